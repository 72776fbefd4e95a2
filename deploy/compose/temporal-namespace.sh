#!/bin/sh
# Runs in temporalio/admin-tools (docker-compose.yml, service temporal-namespace) once the Temporal
# server is healthy: registers the namespace the billing workflows run in, keeping closed runs
# visible in the UI for 30 days. Safe to run on every `docker compose up`.
set -eu
ns="$TEMPORAL_NAMESPACE"
temporal operator cluster health --address "$TEMPORAL_ADDRESS"
temporal operator namespace describe --namespace "$ns" --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 ||
  temporal operator namespace create --namespace "$ns" --retention 30d --address "$TEMPORAL_ADDRESS"
echo "Temporal namespace $ns is ready"
