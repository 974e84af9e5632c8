# One image for the API, the worker and the migrate job (compose.yaml picks the command).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api ./api
COPY worker ./worker
COPY shared ./shared
COPY sql ./sql
COPY searchhub ./searchhub
RUN pip install --no-cache-dir . && useradd --system --no-create-home searchhub
USER searchhub
EXPOSE 8000 9100
ENTRYPOINT ["searchhub"]
CMD ["api"]
