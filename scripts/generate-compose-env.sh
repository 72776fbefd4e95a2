#!/usr/bin/env bash
# Writes the secrets docker-compose.yml needs into .env (or the file given), once: the Postgres
# password and the API-key pepper (src/keys/pepper.ts). It never overwrites: a new pepper would
# make every API key issued under the old one unknown (rotate by prepending "2:<new secret>,").
# Keep the file out of git and images (.gitignore, .dockerignore) and back it up with the database.
set -euo pipefail
file="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.env}"
if [ -e "$file" ] && grep -qE '^(API_KEY_PEPPERS|POSTGRES_PASSWORD)=' "$file"; then
  echo "$file already holds the secrets; not overwriting them" >&2
  exit 0
fi
umask 077
# Hex for the password: it goes into DATABASE_URL unescaped.
{
  echo "POSTGRES_PASSWORD=$(openssl rand -hex 24)"
  echo "API_KEY_PEPPERS=1:$(openssl rand -base64 48 | tr -d '\n')"
} >>"$file"
echo "wrote POSTGRES_PASSWORD and API_KEY_PEPPERS to $file" >&2
