"""The user's own account: profile, password, API keys."""

from flask import Blueprint

bp = Blueprint("account", __name__)
