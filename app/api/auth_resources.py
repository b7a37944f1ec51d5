"""``/admin/api/v2/auth/...``: sign-up, password reset and the user resource."""

from flask import Blueprint

bp = Blueprint("api_auth", __name__, url_prefix="/admin/api/v2/auth")
