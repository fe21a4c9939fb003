"""Real helpers the tests start on loopback: a Python DNS server and Debian's dnsmasq."""
