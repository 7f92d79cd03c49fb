"""Benchmarks: Postel against Debian's Postfix and Dovecot on the same machine, in one run."""
