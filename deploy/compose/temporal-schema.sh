#!/bin/sh
# Runs in temporalio/admin-tools (docker-compose.yml, service temporal-schema) before the Temporal
# server starts: creates Temporal's two databases on the shared Postgres server, then brings their
# schemas to the version this admin-tools image ships. Safe to run on every `docker compose up`.
# SQL_PASSWORD comes from the environment.
set -eu
schemas=/etc/temporal/schema/postgresql/v12
for db in temporal temporal_visibility; do
  sql() { temporal-sql-tool --plugin postgres12 --ep postgres -p 5432 -u postgres --db "$db" "$@"; }
  # Fails when the database exists (a restart); a real failure (wrong password, no server) fails
  # the setup-schema step below with the server's own message.
  sql create || echo "database $db already exists"
  sql setup-schema -v 0.0
  case "$db" in
    temporal) sql update-schema -d "$schemas/temporal/versioned" ;;
    temporal_visibility) sql update-schema -d "$schemas/visibility/versioned" ;;
  esac
done
echo 'Temporal schemas are up to date'
