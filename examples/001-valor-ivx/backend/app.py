"""A small stand-in for the Valor IVX backend (Flask), enough to run the guide's checks
behind rampart. Tenancy, rate limits, CORS, headers and TLS are enforced at the edge.

Run: gunicorn --bind 127.0.0.1:5002 --workers 4 --timeout 120 app:app
"""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/api/health")
def health():
    return jsonify(status="healthy", service="valor-ivx")


@app.get("/api/runs")
def runs():
    return jsonify(tenant=request.headers.get("X-Tenant-ID"), runs=[{"id": 1, "model": "dcf"}])


@app.get("/api/financial-data")
def financial_data():
    return jsonify(tenant=request.headers.get("X-Tenant-ID"), revenue=[120, 135, 150])


@app.get("/api/public/info")
def info():
    return jsonify(name="Valor IVX")


@app.get("/metrics")
def metrics():
    return "http_requests_total 1\n", 200, {"Content-Type": "text/plain"}
