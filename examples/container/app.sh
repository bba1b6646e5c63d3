#!/bin/sh
# A stand-in application for the example image: it gets a path, never a
# value, and reads the file when it needs the secret.
echo "app: uid $(id -u), DB_PASSWORD_FILE=$DB_PASSWORD_FILE"
echo "app: password is $(wc -c < "$DB_PASSWORD_FILE") bytes"
trap 'echo "app: TERM, exiting"; exit 0' TERM
while :; do sleep 1; done
