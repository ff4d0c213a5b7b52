"""The Flux side of the core: reading Kustomizations, HelmReleases and Canaries, and the gate both Lambdas use."""
