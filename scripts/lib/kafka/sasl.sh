# Sourced by scripts/kafka-local: the optional SASL_SSL listener (MDGW_KAFKA_SASL_SSL_PORT),
# TLS with a PEM keystore, then SASL PLAIN or SCRAM-SHA-256/512 for MDGW_KAFKA_SASL_USERS.
sasl_port="${MDGW_KAFKA_SASL_SSL_PORT:-}"
sasl_users="${MDGW_KAFKA_SASL_USERS:-}"

# PLAIN's JAAS options (user_NAME="password" per user).
plain_users() {
  local pair out="" pairs
  IFS=',' read -ra pairs <<<"$sasl_users"
  for pair in "${pairs[@]}"; do out+=" user_${pair%%:*}=\"${pair#*:}\""; done
  echo "$out"
}

# StorageTool arguments creating every user's SCRAM credentials, one per line.
scram_args() {
  local pair mech pairs
  [[ -n "$sasl_users" ]] || return 0
  IFS=',' read -ra pairs <<<"$sasl_users"
  for pair in "${pairs[@]}"; do
    for mech in SCRAM-SHA-256 SCRAM-SHA-512; do
      printf '%s\n' --add-scram "$mech=[name=${pair%%:*},password=${pair#*:}]"
    done
  done
}

# Add the listener to a rendered server.properties (no-op without a SASL port).
sasl_configure() {
  local conf="$1"
  [[ -n "$sasl_port" ]] || return 0
  [[ -f "${MDGW_KAFKA_SSL_KEYSTORE:-}" ]] ||
    die "MDGW_KAFKA_SASL_SSL_PORT needs MDGW_KAFKA_SSL_KEYSTORE (a PEM file)"
  sed -i -e "s#^\(listeners=.*\)#\1,SASL_SSL://127.0.0.1:$sasl_port#" \
    -e "s#^\(advertised.listeners=.*\)#\1,SASL_SSL://127.0.0.1:$sasl_port#" \
    -e "s#^\(listener.security.protocol.map=.*\)#\1,SASL_SSL:SASL_SSL#" "$conf"
  cat >>"$conf" <<CONF
# SASL_SSL listener (MDGW_KAFKA_SASL_SSL_PORT): TLS with a PEM keystore, then SASL.
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$MDGW_KAFKA_SSL_KEYSTORE
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$(plain_users);
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
CONF
}
