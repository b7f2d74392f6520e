# The image docker-compose.yaml runs: the official Airflow image plus this provider and its emulator extra.
#
# It extends the image the way Airflow's image docs describe (https://airflow.apache.org/docs/docker-stack/build.html):
# `pip install` as the `airflow` user, with `apache-airflow==${AIRFLOW_VERSION}` on the same line so pip can never
# up- or downgrade Airflow. Nothing is installed at container start (no _PIP_ADDITIONAL_REQUIREMENTS).
#
# The tag's Airflow version must equal the apache-airflow pin in constraints.txt (tests/test_deployment.py checks it).
FROM apache/airflow:3.3.2-python3.11

# Directories that back the named volumes of docker-compose.yaml. Docker copies a directory's owner into a new,
# empty named volume, so the emulator (running as the airflow user, group 0) can write its CA and state there.
USER root
RUN mkdir -p /opt/entra-emulator \
    && chown airflow:0 /opt/entra-emulator \
    && chmod 2775 /opt/entra-emulator
USER airflow
RUN mkdir -p /opt/airflow/staging

COPY --chown=airflow:0 docker/ /opt/airflow/docker/
COPY --chown=airflow:0 pyproject.toml README.md constraints.txt /tmp/airflow-provider-entra/
COPY --chown=airflow:0 airflow_provider_entra/ /tmp/airflow-provider-entra/airflow_provider_entra/

# Install with constraints.txt, adjusted to the image: the distributions the image already holds (Celery, FAB, ...)
# keep their versions, constraints.txt pins everything the provider adds. See docker/image_constraints.py.
WORKDIR /tmp/airflow-provider-entra
RUN python /opt/airflow/docker/image_constraints.py constraints.txt > /tmp/constraints-image.txt \
    && pip install --no-cache-dir --constraint /tmp/constraints-image.txt \
        "apache-airflow==${AIRFLOW_VERSION}" ".[emulator]" \
    && pip check \
    && rm -rf /tmp/airflow-provider-entra /tmp/constraints-image.txt
WORKDIR /opt/airflow
