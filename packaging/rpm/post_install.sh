# relaykey %post ($1: 1 = install, 2 = upgrade). rpm does not expand %systemd_* macros here.
new_user=
getent passwd relaykey >/dev/null || new_user=1
systemd-sysusers relaykey.conf || :
systemd-tmpfiles --create relaykey.conf >/dev/null 2>&1 || :
if [ -n "$new_user" ]; then : > /var/lib/relaykey/.created-by-package || :; fi
if getent group postfix >/dev/null; then usermod -a -G postfix relaykey || :; fi
if [ "$(stat -c %U:%G /etc/relaykey/relaykey.toml 2>/dev/null)" = root:root ]; then
  chown root:relaykey /etc/relaykey/relaykey.toml || :
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload || :; fi
if [ "$1" -eq 1 ]; then
  systemctl --no-reload enable relaykey.service >/dev/null 2>&1 || :
else
  # Postfix 3.7 does not reconnect to a restarted auth server: restart, then reload Postfix.
  if [ -d /run/systemd/system ]; then systemctl try-restart relaykey.service || :; fi
  if command -v postfix >/dev/null && postfix status >/dev/null 2>&1; then postfix reload >/dev/null 2>&1 || :; fi
fi
