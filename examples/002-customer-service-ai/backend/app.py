"""A small stand-in for the Customer Service AI backend (FastAPI): health and a chat
endpoint that answers without calling a model. Authentication, rate limits, CORS, body
limits, HTTPS and PII masking in logs are rampart's.

Run: python -m uvicorn app:app --host 127.0.0.1 --port 8000
"""

import os

from fastapi import FastAPI, Request

app = FastAPI(title="Customer Service AI (example backend)")


def flag(name: str) -> bool:
    return os.environ.get(name, "false").lower() in ("1", "true", "yes", "on")


@app.get("/health")
def health():
    return {
        "status": "healthy",
        "environment": os.environ.get("ENVIRONMENT", "production"),
        "services": {"api": "operational", "vector_db": "operational", "cache": "operational"},
        "security": {
            "authentication_required": True,
            "https_enforced": True,
            "rate_limiting_enabled": True,
            "pii_masking_enabled": True,
        },
    }


@app.post("/api/v1/chat")
async def chat(request: Request):
    body = await request.json()
    return {
        "session_id": body.get("session_id"),
        "reply": f"You said: {body.get('message', '')}",
        "caller": request.headers.get("X-Auth-Subject"),
    }
