FROM python:3.11-slim
WORKDIR /srv/resnet-lab
COPY pyproject.toml README.md ./
COPY app app
COPY core core
COPY resnet_lab resnet_lab
COPY worker worker
COPY trainer trainer
COPY templates templates
RUN pip install --no-cache-dir -e '.[postgres]'
ENV RESNET_LAB_HOME=/data
EXPOSE 8000
CMD ["resnet-lab", "serve", "--host", "0.0.0.0", "--workers", "0"]
