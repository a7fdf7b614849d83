"""The operators' console (``bridge console``, CONTRACT §5): a server-rendered web application.

Operators sign in (a local operators file of scrypt-hashed passwords, or an OpenID Connect
provider), work the review queue, read a learner's accounts, links, decisions and records, and
watch dead letters and the workers' health. It reads the registry through the store's unit of
work and publishes decisions through the same signed path as ``bridge review`` (:mod:`bridge.commands.decide`).
No page carries a personal value: only pseudonymous ids, kinds of evidence and times.

Modules: ``auth`` (operators, passwords, sessions, CSRF), ``forms`` (every input checked at the
edge), ``views`` (what each page shows, read from the store), ``pages`` (the routes),
``app`` (assembly), ``oidc`` (sign-in through a provider), ``command`` (``bridge console``).
"""
