"""Who may use this deployment: the sign-in lists (``ALLOWED_EMAIL_DOMAINS``, ``INVITED_EMAILS``,
``ADMIN_EMAILS``), checked at sign-in and on every request."""


def named(email, settings):
    return email in settings.get("INVITED_EMAILS", []) or email in settings["ADMIN_EMAILS"]


def may_sign_in(email, settings):
    """True when ``email`` may use this deployment now: with ``ALLOWED_EMAIL_DOMAINS`` or
    ``INVITED_EMAILS`` set, only those domains, those emails and ``ADMIN_EMAILS``. Checked at sign-in
    and on every request (sessions and keys), so an address taken off the lists is out at once."""
    domains, invited = settings["ALLOWED_EMAIL_DOMAINS"], settings.get("INVITED_EMAILS", [])
    if not (domains or invited):
        return True
    email = (email or "").strip().lower()
    return email.rsplit("@", 1)[-1] in domains or named(email, settings)
