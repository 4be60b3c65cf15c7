# pairflow: the Bytewax flow and the dashboard (docker-compose.yml runs both next to Kafka).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# `pip install .` builds the wheel from the packages themselves, so they are copied first.
COPY pyproject.toml README.md ./
COPY pairflow/ pairflow/
COPY connectors/ connectors/
COPY flows/ flows/
COPY dashboard/ dashboard/
COPY app/ app/
COPY schemas/ schemas/
RUN pip install . \
    && useradd --create-home --uid 10001 pairflow
USER pairflow

# `python -m bytewax.run flows.pairs:flow` imports `flows` from the working directory.
EXPOSE 5006
CMD ["pairflow", "--help"]
