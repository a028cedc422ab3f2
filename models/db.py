"""Connect MongoEngine to MongoDB, or to the embedded in-memory store when no URI is set."""
import mongoengine


def init_db(app):
    """Open the default MongoEngine connection described by the app config.

    With ``MONGO_URI`` the database named in the URI is used (else ``MONGO_DB``). Without it the
    embedded mongomock store is used: it lives inside this process and keeps nothing on disk.
    """
    mongoengine.disconnect()
    uri = app.config.get("MONGO_URI")
    if uri:
        mongoengine.connect(db=app.config["MONGO_DB"], host=uri, uuidRepresentation="standard")
    else:
        import mongomock

        mongoengine.connect(
            app.config["MONGO_DB"],
            mongo_client_class=mongomock.MongoClient,
            uuidRepresentation="standard",
        )
        app.logger.warning(
            "MONGO_URI is not set: using the embedded in-memory database; data is NOT persisted "
            "and lives only inside this process"
        )
    app.extensions["mongo_db_name"] = mongoengine.get_db().name
