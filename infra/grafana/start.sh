#!/bin/sh
# Grafana's entrypoint in docker-compose.yml, before the image's own (/run.sh, passed as the arguments).
# Local (the default) keeps the convenience: anonymous viewers, `admin` as the fallback admin password. With
# ENVIRONMENT=production, as the apps do (comm.settings), it refuses to start while GRAFANA_ADMIN_PASSWORD is
# missing or a development value (the same list as comm.settings.DEVELOPMENT_VALUES; tests/test_least_privilege.py
# keeps them equal), and turns anonymous access off whatever the compose file says.
set -eu

if [ "${ENVIRONMENT:-local}" = production ]; then
  password=$(printf '%s' "${GF_SECURITY_ADMIN_PASSWORD:-}" | tr '[:upper:]' '[:lower:]')
  case "$password" in
    "" | guest | postgres | admin | password | secret | blog | auth | user | comment | gateway | *change-me*)
      echo "grafana: ENVIRONMENT=production refuses to start: GRAFANA_ADMIN_PASSWORD is missing or a development value" >&2
      exit 1
      ;;
  esac
  export GF_AUTH_ANONYMOUS_ENABLED=false
fi
exec "$@"
