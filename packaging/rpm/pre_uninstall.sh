# relaykey %preun ($1: 0 = erase, 1 = upgrade).
if [ "$1" -eq 0 ]; then
  systemctl --no-reload disable relaykey.service relaykey-sasl.socket relaykey-policy.socket relaykey-senders.socket relaykey-relay.socket >/dev/null 2>&1 || :
  if [ -d /run/systemd/system ]; then
    systemctl stop relaykey.service relaykey-sasl.socket relaykey-policy.socket relaykey-senders.socket relaykey-relay.socket >/dev/null 2>&1 || :
  fi
fi
