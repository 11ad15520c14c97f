"""Administration pages: the audit trail, and accounts with their roles."""
from __future__ import annotations

from typing import Any

import pandas as pd
from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from geo_ibm import accounts
from geo_ibm.errors import Problem, ValidationError
from webapp.auth import audit, get_store, require_role
from webapp.i18n import gettext as _
from webapp.params import check_known, parse_limit

admin_bp = Blueprint("admin", __name__, url_prefix="/admin")


@admin_bp.route("/audit")
@require_role("admin")
def audit_page() -> Any:
    """The audit trail, newest first: logins, imports, exports, account changes."""
    check_known(request.args, ("limit",))
    limit = parse_limit(request.args.get("limit"), default=200, maximum=5000)
    log = get_store().audit_log(limit=limit)
    entries = log.to_dict(orient="records") if isinstance(log, pd.DataFrame) else list(log)
    return render_template("audit.html", entries=entries, limit=limit)


@admin_bp.route("/users", methods=["GET", "POST"])
@require_role("admin")
def users_page() -> Any:
    """Accounts and roles: add an account, change a role, reset a password, remove an account."""
    store = get_store()
    if request.method == "POST":
        action = request.form.get("action")
        name = (request.form.get("name") or "").strip()
        if action == "add":
            role = request.form.get("role") or ""
            accounts.add_user(store, name, role, request.form.get("password") or "")
            audit("user_add", name=name, role=role, via="web")
            flash(_("User %(name)s added.", name=name))
        elif action == "role":
            role = request.form.get("role") or ""
            accounts.set_role(store, name, role)
            audit("user_role", name=name, role=role)
            flash(_("Role of %(name)s changed.", name=name))
        elif action == "password":
            accounts.set_password(store, name, request.form.get("password") or "")
            audit("user_passwd", name=name, via="web")
            flash(_("Password of %(name)s changed.", name=name))
        elif action == "delete":
            if name.casefold() == g.user["name"].casefold():
                raise ValidationError(_("You cannot remove your own account."))
            accounts.delete_user(store, name)
            audit("user_delete", name=name)
            flash(_("User %(name)s removed.", name=name))
        else:
            raise ValidationError(f"unknown action {action!r}", [Problem("unknown action", column="action", value=action)])
        return redirect(url_for("admin.users_page"))
    return render_template("users.html", users=accounts.list_users(store), roles=accounts.ROLES)
