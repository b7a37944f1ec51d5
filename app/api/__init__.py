"""The REST API: ``/api/v1/config/`` for the omegaml client and ``/admin/api/v2/...``."""
