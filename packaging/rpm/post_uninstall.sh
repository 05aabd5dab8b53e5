# relaykey %postun ($1: 0 = erase, 1 = upgrade). rpm has no purge: data and user stay.
if [ -d /run/systemd/system ]; then systemctl daemon-reload || :; fi
