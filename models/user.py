"""Staff users who sign in with Google."""
from flask_login import UserMixin
from mongoengine import BooleanField, DateTimeField, Document, StringField

from models.base import utcnow
from models.roles import ROLES, VIEWER


class User(UserMixin, Document):
    """A person signed in through Google, identified by the OpenID ``sub`` claim."""

    google_id = StringField(db_field="googleId", required=True, unique=True)
    display_name = StringField(db_field="displayName")
    first_name = StringField(db_field="firstName")
    last_name = StringField(db_field="lastName")
    image = StringField()
    email = StringField()
    created_at = DateTimeField(db_field="createdAt", default=utcnow)
    last_login_at = DateTimeField(db_field="lastLoginAt")
    role = StringField(choices=ROLES, default=VIEWER)
    disabled = BooleanField(default=False)
    # sessions started before this are over (set when the user is disabled: re-enabling must not
    # bring an old cookie back)
    sessions_valid_after = DateTimeField(db_field="sessionsValidAfter")

    meta = {"collection": "users", "indexes": ["role"]}

    @property
    def is_active(self):
        """Flask-Login: a disabled user is treated as signed out everywhere, at once."""
        return not self.disabled

    def get_id(self):
        """Flask-Login's session key: the document id as text."""
        return str(self.pk)
