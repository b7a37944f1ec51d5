"""The provisioning engine: service specs, params, commands and the steps they run."""
