# Read by the flask command (python-dotenv): commands build the app without serving it, so they
# print no development key and start no scheduler. .env is read too, for MONGO_URI and the rest.
FLASK_APP=app:create_app
