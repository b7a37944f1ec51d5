"""Valid rows by default; pass what a test cares about."""

import itertools

from flask import current_app

from app.extensions import db
from app.models import User
from app.models.types import utcnow
from app.ops.specs import apply_specs, parse_specs, spec_fallbacks

PASSWORD = "correct horse battery"
_counter = itertools.count(1)


def make_user(email=None, userid=None, admin=False, active=True, password=PASSWORD, confirmed=True, **fields):
    n = next(_counter)
    user = User(
        email=email or f"user{n}@example.com",
        userid=userid or f"user{n}",
        admin=admin,
        active=active,
        first_name=fields.pop("first_name", "Ada"),
        last_name=fields.pop("last_name", f"Tester{n}"),
        email_confirmed_at=utcnow() if confirmed else None,
        **fields,
    )
    if password:
        user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


# what the test plans accept (app/ops/parameters.py): no defaults, so a command's params are what it gave
TEST_PARAMETERS = """
  parameters:
    - {name: size, type: integer, minimum: 0, maximum: 16}
    - {name: qualifier, type: string, pattern: "[a-z][a-z0-9]{0,31}"}
    - {name: db_password, type: string, secret: true}
    - {name: api_token, type: string, secret: true}
    - {name: flag, type: string}
    - {name: x, type: string}
    - {name: z, type: string}
"""

SIMPLE_SPEC = """
- plan: {name}
  title: {title}
  offered: {offered}
  one_per_user: {one_per_user}
{parameters}
  configuration:
    env:
      CLUSTER_ID: ${{CLUSTER_ID}}
  steps:
    - task: app.ops.tasks.deploy_user_service
      params: ""
      phases: [install, update]
"""


def make_plan(name="omegaml", title="omega|ml", offered=True, one_per_user=True, spec=None, parameters=None):
    """A plan loaded through the real spec loader (so factories and `createservice` agree)."""
    text = spec or SIMPLE_SPEC.format(
        name=name,
        title=title,
        offered=str(offered).lower(),
        one_per_user=str(one_per_user).lower(),
        parameters=TEST_PARAMETERS.strip("\n") if parameters is None else parameters,
    )
    plans = parse_specs(text, "factory", current_app.config["SCRIPTS_DIR"], spec_fallbacks(current_app.config))
    apply_specs(plans)
    db.session.commit()
    from app.models import ServicePlan

    return ServicePlan.by_name(plans[0].name)
