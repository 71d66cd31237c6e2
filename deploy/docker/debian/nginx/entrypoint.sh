#!/bin/sh
# The official nginx image's template step: /etc/nginx/templates/NAME.template becomes
# /etc/nginx/conf.d/NAME with the ${VARIABLES} that are set in the environment replaced
# (nginx's own $variables, and any ${NAME} not set, are left alone).
set -eu
set_variables=$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/${\1}/p' | tr '\n' ' ')
for template in /etc/nginx/templates/*.template; do
  [ -e "$template" ] || continue
  output=/etc/nginx/conf.d/$(basename "$template" .template)
  envsubst "$set_variables" <"$template" >"$output"
done
exec "$@"
