"""Client auto-configuration: every document a mail client or a DNS zone needs, built from
the live configuration and nothing else.

Pure code (no I/O except the DNS check): `settings` turns a Config into the endpoints
clients should use; `thunderbird`, `autodiscover`, `mobileconfig` and `mtasts` render
documents from it; `dnsrecords` lists what a domain should publish and `dnscheck` compares
that with what DNS answers. The HTTP routes are in postel.web.autoconfig.
"""
