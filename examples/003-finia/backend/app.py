"""A small stand-in for the FiniA API (FastAPI): health, login (the edge throttles it and
locks accounts out), accounts, and the static root it serves itself.

Run: python -m uvicorn app:app --host 127.0.0.1 --port 8000
"""

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

app = FastAPI(title="FiniA API")


@app.get("/api/health")
def health():
    return {"status": "healthy", "service": "FiniA API", "version": "1.0.0"}


@app.post("/api/auth/login")
async def login(request: Request):
    body = await request.json()
    if body.get("password") != "correct horse battery staple":
        return JSONResponse({"detail": "Invalid credentials"}, status_code=401)
    return {"access_token": "tok", "token_type": "bearer"}


@app.get("/api/accounts")
def accounts():
    return [{"id": 1, "name": "Checking", "balance": "1250.00"}]


# GET and HEAD: the guide checks the site with `curl -I` (FastAPI answers HEAD only where
# asked to).
@app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
def index():
    return "<!doctype html><html lang=en><head><meta charset=utf-8><title>FiniA</title></head><body><h1>FiniA</h1></body></html>"
