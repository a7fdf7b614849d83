"""The store: the identity registry and credit ledger, read and written through one port, the unit
of work (:mod:`bridge.store.uow`), whose repositories are one module each. Nothing outside this
package writes SQL."""
