#!/bin/sh
# The image's entrypoint: which process this container runs.
#   web [gunicorn flags]     data migrations (flask db upgrade), then gunicorn on $HOST:$PORT
#   worker [celery flags]    a Celery worker on the campaign and import queues
#   beat [celery flags]      Celery beat (one per deployment is enough; more are harmless)
#   migrate                  only the data migrations (a one-off job before a rollout)
#   anything else            run as given (flask db status, a shell, ...)
# MIGRATE_ON_START=0 makes web skip the migrations (when a separate job runs them).
set -eu
process="${1:-web}"
[ "$#" -gt 0 ] && shift
case "$process" in
  web)
    if [ "${MIGRATE_ON_START:-1}" != "0" ]; then
      flask db upgrade
    fi
    exec gunicorn wsgi:app --bind "${HOST:-0.0.0.0}:${PORT:-5000}" \
      --workers "${WEB_CONCURRENCY:-2}" --threads "${THREADS:-1}" "$@"
    ;;
  worker)
    queue="${CELERY_QUEUE:-crm}"
    exec celery -A worker worker -Q "$queue,${CELERY_IMPORT_QUEUE:-$queue-imports}" --loglevel INFO "$@"
    ;;
  beat)
    exec celery -A worker beat --loglevel INFO --schedule "${BEAT_SCHEDULE_FILE:-/tmp/crm-celerybeat-schedule}" \
      --pidfile= "$@"
    ;;
  migrate)
    exec flask db upgrade "$@"
    ;;
  *)
    exec "$process" "$@"
    ;;
esac
