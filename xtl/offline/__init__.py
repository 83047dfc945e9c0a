"""What the offline demo (`make demo`) needs besides the kit itself: small samples of real data
that travel inside the package (`xtl.offline.samples`)."""
