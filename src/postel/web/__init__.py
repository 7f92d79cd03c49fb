"""The web interface on ports 80/443: logon, password recovery, My Settings, domain and
system administration, and the JSON API they share (``/api/v1``)."""
