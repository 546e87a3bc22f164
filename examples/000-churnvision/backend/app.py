"""A small stand-in for the ChurnVision backend (FastAPI), enough to run the guide's checks
behind rampart. What rampart does at the edge (TLS, headers, rate limits, body limits,
CSRF, JSON logs, integrity, license, backups) is not here: that is the point.

Run: python -m uvicorn app:app --port 8000
"""

import hashlib
import secrets

from fastapi import FastAPI, Request, Response, WebSocket
from fastapi.responses import JSONResponse

app = FastAPI(title="ChurnVision (example backend)")

USERS = {"analyst@example.com": hashlib.sha256(b"correct horse battery staple").hexdigest()}
TOKENS: dict[str, str] = {}
EMPLOYEES = [{"id": 1, "name": "Ada", "churn_risk": 0.12}]


@app.get("/health")
def health():
    return {"status": "healthy", "service": "churnvision-backend"}


@app.post("/api/v1/auth/login")
async def login(request: Request):
    body = await request.json()
    user, password = body.get("username", ""), body.get("password", "")
    if USERS.get(user) != hashlib.sha256(password.encode()).hexdigest():
        return JSONResponse({"detail": "invalid credentials"}, status_code=401)
    token = secrets.token_urlsafe(32)
    TOKENS[token] = user
    return {"access_token": token, "token_type": "bearer"}


@app.post("/api/v1/auth/register")
async def register(request: Request):
    body = await request.json()
    return JSONResponse({"registered": body.get("username")}, status_code=201)


@app.get("/api/v1/employees")
def employees():
    return EMPLOYEES


@app.post("/api/v1/employees")
async def add_employee(request: Request):
    e = await request.json()
    e["id"] = len(EMPLOYEES) + 1
    EMPLOYEES.append(e)
    return JSONResponse(e, status_code=201)


@app.post("/api/v1/churn/upload")
async def upload(request: Request):
    n = 0
    async for chunk in request.stream():
        n += len(chunk)
    return {"received_bytes": n}


@app.post("/api/v1/rag/upload")
async def rag_upload(request: Request):
    n = 0
    async for chunk in request.stream():
        n += len(chunk)
    return {"indexed_bytes": n}


@app.post("/api/v1/churn/predict")
async def predict(request: Request):
    body = await request.json()
    return {"employee_id": body.get("employee_id"), "churn_risk": 0.42}


@app.websocket("/api/v1/ws")
async def ws(socket: WebSocket):
    await socket.accept()
    async for text in socket.iter_text():
        await socket.send_text(f"echo: {text}")


@app.get("/metrics")
def metrics():
    return Response("churnvision_up 1\n", media_type="text/plain")
