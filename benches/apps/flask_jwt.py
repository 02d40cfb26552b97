"""The stack dashgate replaces, as people hand-wire it: Flask + Flask-JWT-Extended with the
JWT in cookies, CSRF double submit on, and a Redis blocklist checked on every request.
Run under gunicorn: BENCH_JWT_SECRET and BENCH_REDIS_PORT come from the environment."""

import os
from datetime import timedelta

import redis
from flask import Flask, jsonify
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    jwt_required,
    set_access_cookies,
)

app = Flask(__name__)
app.config.update(
    JWT_SECRET_KEY=os.environ["BENCH_JWT_SECRET"],
    JWT_TOKEN_LOCATION=["cookies"],
    JWT_COOKIE_CSRF_PROTECT=True,
    JWT_COOKIE_SECURE=False,
    JWT_ACCESS_TOKEN_EXPIRES=timedelta(hours=1),
)
jwt = JWTManager(app)
blocklist = redis.Redis(host="127.0.0.1", port=int(os.environ["BENCH_REDIS_PORT"]))


@jwt.token_in_blocklist_loader
def is_revoked(_header, payload):
    return blocklist.get("blocklist:" + payload["jti"]) is not None


@app.post("/login")
def login():
    resp = jsonify(ok=True)
    set_access_cookies(resp, create_access_token(identity="alice"))
    return resp


@app.get("/protected")
@jwt_required()
def protected():
    return "ok"
