"""The emulator process: emulator.json, CLI and environment options, state surviving restarts and kills."""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from airflow_provider_entra.emulator.__main__ import build_parser
from airflow_provider_entra.emulator.process import EmulatorError, EmulatorProcess
from airflow_provider_entra.emulator.testing import Graph, bulk, user


def test_emulator_json_has_the_contracted_keys(emulator: EmulatorProcess) -> None:
    info = json.loads((Path(emulator.ca_bundle).parent / "emulator.json").read_text())
    for key in (
        "authority_host",
        "graph_endpoint",
        "tenant_id",
        "client_id",
        "client_secret",
        "service_principal_id",
        "job_id",
        "ca_bundle",
        "control_url",
        "certificate",
        "airflow_conn",
        "apps",
        "managed_identity",
        "federated",
    ):
        assert key in info, key
    base = f"https://127.0.0.1:{emulator.port}"
    assert info["authority_host"] == info["graph_endpoint"] == base
    assert info["control_url"] == f"{base}/_emulator"
    assert info["job_id"] == f"API2AAD.{info['tenant_id'].replace('-', '')}.{info['job_id'].split('.')[-1]}"
    assert Path(info["ca_bundle"]).is_absolute() and Path(info["ca_bundle"]).exists()
    cert = info["certificate"]
    assert cert["client_id"] == info["client_id"]
    assert Path(cert["certificate_path"]).exists() and Path(cert["private_key_path"]).exists()
    assert len(cert["thumbprint"]) == 40
    conn = info["airflow_conn"]
    assert conn["conn_type"] == "entra"
    assert (conn["login"], conn["password"]) == (info["client_id"], info["client_secret"])
    assert conn["extra"] == {
        "tenant_id": info["tenant_id"],
        "service_principal_id": info["service_principal_id"],
        "job_id": info["job_id"],
        "authority_host": base,
        "graph_endpoint": base,
        "ca_bundle": info["ca_bundle"],
        "api_version": "v1.0",
    }
    assert set(info["apps"]) == {"default", "admin"}
    admin = info["apps"]["admin"]
    assert admin["job_id"] != info["job_id"]
    assert admin["airflow_conn"]["extra"]["job_id"] == admin["job_id"]
    assert set(info["managed_identity"]) >= {"identity_endpoint", "identity_header", "client_id"}
    assert Path(info["federated"]["token_file"]).exists()


def test_admin_app_uploads_to_its_own_job(emu: EmulatorProcess) -> None:
    admin = Graph(emu, emu.info["apps"]["admin"])
    assert admin.upload(bulk(user("A-1", "adm-1@contoso.com"))).status_code == 202
    emu.process()
    (entry,) = admin.job_logs()
    assert entry["jobId"] == emu.info["apps"]["admin"]["job_id"]
    assert Graph(emu).job_logs() == []


def test_environment_variables_set_defaults_and_the_command_line_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENTRA_EMULATOR_PORT", "8443")
    monkeypatch.setenv("ENTRA_EMULATOR_RATE_LIMIT", "10/1")
    monkeypatch.setenv("ENTRA_EMULATOR_ADVERTISE_HOST", "entra-emulator")
    args = build_parser().parse_args(["--port", "9443"])
    assert (args.port, args.rate_limit, args.advertise_host) == (9443, "10/1", "entra-emulator")


def test_state_survives_restart_and_kill(tmp_path: Path) -> None:
    with EmulatorProcess(tmp_path, processing_delay=0.2) as emu:
        emu.configure(log_rate_limit="1000/1")
        graph = Graph(emu)
        info = dict(emu.info)
        graph.upload(bulk(user("1", "boss@contoso.com"), user("2", manager="1")))
        emu.process()
        assert graph.job_action("pause").status_code == 204
        assert graph.upload(bulk(user("3"))).status_code == 202
        users_before = sorted(emu.users(), key=lambda u: u["employeeId"])
        logs_before = graph.job_logs()

        emu.restart()
        assert emu.info["port"] == info["port"]
        assert {k: emu.info[k] for k in ("tenant_id", "client_id", "client_secret", "job_id")} == {
            k: info[k] for k in ("tenant_id", "client_id", "client_secret", "job_id")
        }
        emu.configure(log_rate_limit="1000/1")
        assert sorted(emu.users(), key=lambda u: u["employeeId"]) == users_before
        assert graph.job_logs() == logs_before  # the old token is still valid after a restart
        assert graph.job()["status"]["code"] == "Paused"
        assert emu.stats()["uploads_pending"] == 1

        emu.kill()
        emu.start()
        emu.configure(log_rate_limit="1000/1")
        graph = Graph(emu)
        assert graph.job_action("start").status_code == 204
        emu.process()
        assert sorted(u["employeeId"] for u in emu.users()) == ["1", "2", "3"]
        assert len(graph.job_logs()) == len(logs_before) + 1


def test_advertise_host_and_apps_file(tmp_path: Path) -> None:
    apps = [
        {
            "name": "default",
            "client_id": "11111111-1111-1111-1111-111111111111",
            "client_secret": "fixed-secret-for-compose",
            "service_principal_id": "22222222-2222-2222-2222-222222222222",
            "job_id": "API2AAD.33333333333333333333333333333333.44444444-4444-4444-4444-444444444444",
            "roles": [
                "SynchronizationData-User.Upload",
                "AuditLog.Read.All",
                "Synchronization.ReadWrite.All",
            ],
        },
        {
            "name": "hr-contractors",
            "client_id": "55555555-5555-5555-5555-555555555555",
            "client_secret": "another-fixed-secret",
            "service_principal_id": "66666666-6666-6666-6666-666666666666",
            "job_id": "API2AAD.33333333333333333333333333333333.77777777-7777-7777-7777-777777777777",
        },
    ]
    apps_file = tmp_path / "apps.json"
    apps_file.write_text(json.dumps(apps))
    data_dir = tmp_path / "data"
    tenant = "33333333-3333-3333-3333-333333333333"
    extra = ["--advertise-host", "entra-emulator", "--apps-file", str(apps_file), "--tenant-id", tenant]
    with EmulatorProcess(data_dir, extra_args=extra) as emu:
        info = emu.info
        base = f"https://entra-emulator:{emu.port}"
        assert info["authority_host"] == info["graph_endpoint"] == base
        assert info["tenant_id"] == tenant
        assert (info["client_id"], info["client_secret"]) == (
            "11111111-1111-1111-1111-111111111111",
            "fixed-secret-for-compose",
        )
        assert info["apps"]["hr-contractors"]["job_id"] == apps[1]["job_id"]
        assert info["airflow_conn"]["extra"]["graph_endpoint"] == base
        cert = x509.load_pem_x509_certificate((data_dir / "server-cert.pem").read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert {"entra-emulator", "localhost"} <= set(names.get_values_for_type(x509.DNSName))
        # The server certificate verifies under the advertised name with the CA alone.
        context = ssl.create_default_context(cafile=info["ca_bundle"])
        with (
            socket.create_connection(("127.0.0.1", emu.port)) as raw,
            context.wrap_socket(raw, server_hostname="entra-emulator") as tls,
        ):
            assert tls.version()
        # Fixed credentials work (through the loopback address, as the name does not resolve here).
        fixed = dict(info["apps"]["hr-contractors"])
        graph = Graph(emu, fixed)
        graph.info = {**info, "authority_host": f"https://127.0.0.1:{emu.port}"}
        graph.base = f"https://127.0.0.1:{emu.port}"
        assert graph.upload(bulk(user("1"))).status_code == 202


def test_a_bad_apps_file_stops_the_start(tmp_path: Path) -> None:
    apps_file = tmp_path / "apps.json"
    apps_file.write_text(json.dumps([{"name": "default"}]))
    with pytest.raises(EmulatorError, match="lacks"):
        EmulatorProcess(tmp_path / "data", extra_args=["--apps-file", str(apps_file)]).start(timeout=20)
