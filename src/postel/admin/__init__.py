"""The operations layer: every change an operator or a user makes to domains, users,
aliases and their own settings, with its permission check, validation and audit record in
one place. The command line, the web pages and the JSON API all call it.

Blocking (store calls): async callers run it in a worker thread. It may import store, auth,
mail, queue and delivery; never web, smtp, imap, pop3 or cli.
"""
