"""Processing: uploads land in the directory as Entra documents it, and the logs say what happened."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow_provider_entra.emulator.process import EmulatorProcess
from airflow_provider_entra.emulator.testing import ENTERPRISE, Graph, bulk, user


def _send(graph: Graph, *records: dict[str, Any]) -> None:
    response = graph.upload(bulk(*records))
    assert response.status_code == 202, response.text
    graph.emu.process()


def _directory(emu: EmulatorProcess) -> dict[str, dict[str, Any]]:
    return {u["employeeId"]: u for u in emu.users()}


def _entries_for(graph: Graph, ext: str) -> list[dict[str, Any]]:
    """Entries of one record, oldest first."""
    return graph.all_logs(
        f"jobid eq '{graph.app['job_id']}' and sourceIdentity/id eq '{ext}'",
        **{"$orderby": "activityDateTime asc"},
    )


def _steps(entry: dict[str, Any]) -> list[str]:
    return [s["name"] for s in entry["provisioningSteps"]]


def _mods(entry: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {m["displayName"]: (m["oldValue"], m["newValue"]) for m in entry["modifiedProperties"]}


def test_manager_and_report_in_one_request_end_to_end(graph: Graph) -> None:
    _send(graph, user("1000", "boss@contoso.com"), user("1001", "report@contoso.com", manager="1000"))

    report = _entries_for(graph, "1001")
    assert [e["provisioningAction"] for e in report] == ["create", "update"]
    create, update = report
    assert create["changeId"] == update["changeId"]
    assert create["cycleId"] == update["cycleId"]
    skip = next(s for s in create["provisioningSteps"] if s["name"] == "EntrySynchronizationSkip")
    assert skip["details"]["SkipReason"] == "UnableToResolveReferenceAttributeValue"
    assert skip["details"]["PropertyName"] == "manager"
    assert "manager" not in _mods(create)
    directory = _directory(graph.emu)
    boss_id = directory["1000"]["id"]
    assert _mods(update) == {"manager": (None, boss_id)}
    assert update["provisioningStatusInfo"]["status"] == "success"
    assert directory["1001"]["manager"] == boss_id
    assert directory["1001"]["managerEmployeeId"] == "1000"

    boss = _entries_for(graph, "1000")
    assert [e["provisioningAction"] for e in boss] == ["create"]
    assert "EntrySynchronizationSkip" not in _steps(boss[0])


def test_manager_processed_in_an_earlier_cycle_resolves_at_once(graph: Graph) -> None:
    _send(graph, user("2000", "boss2@contoso.com"))
    _send(graph, user("2001", "report2@contoso.com", manager="2000"))
    (create,) = _entries_for(graph, "2001")
    assert "EntrySynchronizationSkip" not in _steps(create)
    assert _mods(create)["manager"] == (None, _directory(graph.emu)["2000"]["id"])


def test_manager_never_sent_stays_unresolved(graph: Graph) -> None:
    _send(graph, user("3001", "orphan@contoso.com", manager="9999"))
    entries = _entries_for(graph, "3001")
    assert [e["provisioningAction"] for e in entries] == ["create"]
    assert "EntrySynchronizationSkip" in _steps(entries[0])
    assert _directory(graph.emu)["3001"]["manager"] is None


def test_manager_cycle_resolves_on_second_pass_both_ways(graph: Graph) -> None:
    _send(graph, user("4001", manager="4002"), user("4002", manager="4001"))
    directory = _directory(graph.emu)
    assert directory["4001"]["managerEmployeeId"] == "4002"
    assert directory["4002"]["managerEmployeeId"] == "4001"


def test_create_entry_mirrors_microsofts_sample_shape(graph: Graph, microsoft_sample: Path) -> None:
    sample = json.loads((microsoft_sample / "provisioning-logs-response.json").read_text())["value"]
    sample_create = next(e for e in sample if e["provisioningAction"] == "create")
    _send(graph, user("5000", "shape@contoso.com"))
    (v1_entry,) = _entries_for(graph, "5000")
    assert set(v1_entry) == set(sample_create) - {"action", "statusInfo"}
    beta = graph.logs("beta", **{"$filter": "sourceIdentity/id eq '5000'"}).json()["value"][0]
    assert set(beta) == set(sample_create)
    assert beta["action"] == "Create"
    assert beta["statusInfo"] == {"status": "success"}
    assert _steps(v1_entry) == [
        "EntryImportAdd",
        "EntrySynchronizationScoping",
        "EntrySynchronizationAdd",
        "EntryExportAdd",
    ]
    assert [s["provisioningStepType"] for s in v1_entry["provisioningSteps"]] == [
        "import",
        "scoping",
        "matching",
        "export",
    ]
    for key in ("sourceSystem", "targetSystem", "sourceIdentity", "targetIdentity", "initiatedBy"):
        assert set(v1_entry[key]) == set(sample_create[key]), key
    assert v1_entry["sourceSystem"]["displayName"] == "API"
    assert v1_entry["targetIdentity"]["details"]["UserPrincipalName"] == "shape@contoso.com"
    assert v1_entry["activityDateTime"].endswith("Z")
    mods = _mods(v1_entry)
    assert mods["employeeId"] == (None, "5000")
    assert mods["userPrincipalName"] == (None, "shape@contoso.com")
    assert mods["accountEnabled"] == (None, "True")
    assert mods["passwordProfile.password"] == (None, "[Redacted]")
    import_step = v1_entry["provisioningSteps"][0]
    assert import_step["details"]["namegivenName"] == "Given"
    assert import_step["details"]["urnietfparamsscimschemasextensionenterprise20Userdepartment"] == "R&D"


def test_default_mapping_of_core_and_enterprise_attributes(graph: Graph) -> None:
    record = user(
        "6000",
        "mapped@contoso.com",
        display_name="Barbara Jensen",
        title="Tour Guide",
        preferredLanguage="en-US",
        userType="Employee",
        emails=[{"value": "bjensen@example.com", "type": "work", "primary": True}],
        phoneNumbers=[{"value": "555-555-5555", "type": "work"}, {"value": "555-000", "type": "mobile"}],
        addresses=[
            {
                "type": "work",
                "streetAddress": "100 Plaza",
                "locality": "Hollywood",
                "region": "CA",
                "postalCode": "91608",
                "country": "US",
            }
        ],
    )
    record["name"] = {"givenName": "Barbara", "familyName": "Jensen"}
    record[ENTERPRISE] = {
        "department": "Tours",
        "division": "Parks",
        "costCenter": "4130",
        "organization": "Universal",
        "employeeNumber": "E1",
    }
    _send(graph, record)
    u = _directory(graph.emu)["6000"]
    expected = {
        "userPrincipalName": "mapped@contoso.com",
        "mailNickname": "mapped",
        "displayName": "Barbara Jensen",
        "givenName": "Barbara",
        "surname": "Jensen",
        "jobTitle": "Tour Guide",
        "department": "Tours",
        "division": "Parks",
        "costCenter": "4130",
        "companyName": "Universal",
        "employeeId": "6000",
        "employeeType": "Employee",
        "accountEnabled": True,
        "mail": "bjensen@example.com",
        "telephoneNumber": "555-555-5555",
        "mobile": "555-000",
        "streetAddress": "100 Plaza",
        "city": "Hollywood",
        "state": "CA",
        "postalCode": "91608",
        "country": "US",
        "preferredLanguage": "en-US",
    }
    assert {k: u.get(k) for k in expected} == expected


def test_user_name_without_domain_gets_the_tenant_domain(graph: Graph) -> None:
    _send(graph, user("6100", "bjensen"))
    assert _directory(graph.emu)["6100"]["userPrincipalName"] == "bjensen@contoso.onmicrosoft.com"


def test_update_lists_only_changed_properties(graph: Graph) -> None:
    _send(graph, user("7000", "mover@contoso.com"))
    _send(graph, user("7000", "mover@contoso.com", title="Manager"))
    create, update = _entries_for(graph, "7000")
    assert update["provisioningAction"] == "update"
    assert create["changeId"] != update["changeId"]
    assert _mods(update) == {"jobTitle": ("Engineer", "Manager")}
    assert _steps(update) == [
        "EntryImportAdd",
        "EntryImport",
        "EntrySynchronizationScoping",
        "EntryExportUpdate",
    ]
    assert update["targetIdentity"]["id"] == _directory(graph.emu)["7000"]["id"]
    assert _directory(graph.emu)["7000"]["jobTitle"] == "Manager"


def test_identical_record_is_skipped_as_redundant(graph: Graph) -> None:
    _send(graph, user("7100"))
    _send(graph, user("7100"))
    _, again = _entries_for(graph, "7100")
    assert again["provisioningAction"] == "other"
    assert again["provisioningStatusInfo"]["status"] == "skipped"
    assert again["modifiedProperties"] == []
    assert again["provisioningSteps"][-1]["details"]["SkipReason"] == "RedundantExport"


def test_disable_and_enable(graph: Graph) -> None:
    _send(graph, user("7200"))
    _send(graph, user("7200", active=False))
    assert _directory(graph.emu)["7200"]["accountEnabled"] is False
    _send(graph, user("7200", active=True))
    assert _directory(graph.emu)["7200"]["accountEnabled"] is True
    actions = [(e["provisioningAction"], _mods(e).get("accountEnabled")) for e in _entries_for(graph, "7200")]
    assert actions == [
        ("create", (None, "True")),
        ("disable", ("True", "False")),
        ("update", ("False", "True")),
    ]


def test_omitted_active_disables_as_reported(graph: Graph) -> None:
    _send(graph, user("7300"))
    _send(graph, user("7300", active=None))
    assert _directory(graph.emu)["7300"]["accountEnabled"] is False
    graph.emu.configure(missing_active_disables=False)
    _send(graph, user("7301"))
    _send(graph, user("7301", active=None))
    assert _directory(graph.emu)["7301"]["accountEnabled"] is True


def test_null_attributes_are_not_provisioned(graph: Graph) -> None:
    _send(graph, user("7400"))
    _send(graph, user("7400", title=None))
    assert _directory(graph.emu)["7400"]["jobTitle"] == "Engineer"


def test_new_inactive_user_is_created_disabled_or_skipped_by_option(graph: Graph) -> None:
    _send(graph, user("7500", active=False))
    assert _directory(graph.emu)["7500"]["accountEnabled"] is False
    graph.emu.configure(create_inactive=False)
    _send(graph, user("7501", active=False))
    assert "7501" not in _directory(graph.emu)
    (entry,) = _entries_for(graph, "7501")
    assert (entry["provisioningAction"], entry["provisioningStatusInfo"]["status"]) == ("other", "skipped")
    assert entry["provisioningSteps"][-1]["details"]["SkipReason"] == "NotEffectivelyEntitled"
    # A matching (existing) user is in scope whatever create_inactive says: disabling it is an update.
    _send(graph, user("7500", active=False))
    (redundant,) = [e for e in _entries_for(graph, "7500") if e["provisioningAction"] == "other"]
    assert redundant["provisioningSteps"][-1]["details"]["SkipReason"] == "RedundantExport"


def test_duplicate_upn_fails_that_record_only(graph: Graph) -> None:
    _send(
        graph,
        user("8000", "same@contoso.com"),
        user("8001", "same@contoso.com"),
        user("8002", "other@contoso.com"),
    )
    directory = _directory(graph.emu)
    assert set(directory) == {"8000", "8002"}
    (failed,) = _entries_for(graph, "8001")
    assert failed["provisioningAction"] == "create"
    status = failed["provisioningStatusInfo"]
    assert status["status"] == "failure"
    assert status["errorInformation"]["errorCode"] == "AzureActiveDirectoryInvalidUserPrincipalName"
    assert "userPrincipalName" in status["errorInformation"]["reason"]
    assert failed["targetIdentity"]["id"] == ""
    assert failed["provisioningSteps"][-1]["status"] == "failure"
    last = graph.job()["status"]["lastExecution"]
    assert last["state"] == "EntryLevelErrors"
    assert last["countImported"] == 3
    assert last["countEscrowed"] == 1  # one failed record counts once


def test_upn_change_onto_an_existing_upn_fails_the_update(graph: Graph) -> None:
    _send(graph, user("8100", "a@contoso.com"), user("8101", "b@contoso.com"))
    _send(graph, user("8101", "a@contoso.com"))
    _, failed = _entries_for(graph, "8101")
    assert (failed["provisioningAction"], failed["provisioningStatusInfo"]["status"]) == ("update", "failure")
    assert _directory(graph.emu)["8101"]["userPrincipalName"] == "b@contoso.com"


def test_invalid_upn_and_missing_display_name_fail(graph: Graph) -> None:
    no_name = user("8201", "noname@contoso.com")
    del no_name["displayName"]
    _send(graph, user("8200", "has space@contoso.com"), no_name)
    assert _directory(graph.emu) == {}
    (bad_upn,) = _entries_for(graph, "8200")
    assert bad_upn["provisioningStatusInfo"]["errorInformation"]["errorCode"] == (
        "AzureActiveDirectoryInvalidUserPrincipalName"
    )
    (missing,) = _entries_for(graph, "8201")
    assert "displayName" in missing["provisioningStatusInfo"]["errorInformation"]["reason"]


def test_records_of_one_request_are_processed_in_order(graph: Graph) -> None:
    _send(graph, user("8300", title="First"), user("8300", title="Second"))
    first, second = _entries_for(graph, "8300")
    assert (first["provisioningAction"], second["provisioningAction"]) == ("create", "update")
    assert _directory(graph.emu)["8300"]["jobTitle"] == "Second"


CUSTOM = "urn:ietf:params:scim:schemas:extension:contoso:1.0:User"


def _custom_user(ext: str, **attrs: Any) -> dict[str, Any]:
    record = user(ext)
    record["schemas"] = [*record["schemas"], CUSTOM]
    record[CUSTOM] = attrs
    return record


def test_custom_attributes_flow_only_when_declared(graph: Graph) -> None:
    _send(graph, _custom_user("9000", CostCode="X1", HireDate="2024-03-01T00:00:00-05:00"))
    undeclared = _directory(graph.emu)["9000"]
    assert "extension_costCode" not in undeclared
    assert "employeeHireDate" not in undeclared
    graph.emu.configure_job(
        graph.app["job_id"],
        custom_attributes={
            f"{CUSTOM}:CostCode": "extension_costCode",
            f"{CUSTOM}:HireDate": "employeeHireDate",
        },
    )
    _send(graph, _custom_user("9000", CostCode="X1", HireDate="2024-03-01T00:00:00-05:00"))
    declared = _directory(graph.emu)["9000"]
    assert declared["extension_costCode"] == "X1"
    assert declared["employeeHireDate"] == "2024-03-01T00:00:00-05:00"


def test_date_only_values_do_not_flow_into_date_attributes(graph: Graph) -> None:
    graph.emu.configure_job(graph.app["job_id"], custom_attributes={f"{CUSTOM}:HireDate": "employeeHireDate"})
    _send(graph, _custom_user("9100", HireDate="2024-03-01"))
    assert "employeeHireDate" not in _directory(graph.emu)["9100"]


def test_uploads_wait_for_the_processing_delay(graph: Graph) -> None:
    graph.emu.configure(processing_delay=3600)
    assert graph.upload(bulk(user("9200"))).status_code == 202
    stats = graph.emu.stats()
    assert stats["uploads_pending"] == 1
    assert graph.job_logs() == []
    assert graph.emu.process()["processed_uploads"] == 1
    assert [e["provisioningAction"] for e in graph.job_logs()] == ["create"]


def test_paused_job_accepts_uploads_but_processes_nothing_until_started(graph: Graph) -> None:
    assert graph.job_action("pause").status_code == 204
    assert graph.job()["status"]["code"] == "Paused"
    assert graph.upload(bulk(user("9300"))).status_code == 202
    assert graph.emu.process()["processed_uploads"] == 0
    assert graph.emu.stats()["uploads_pending"] == 1
    assert graph.job_logs() == []
    assert graph.emu.users() == []
    assert graph.job_action("start").status_code == 204
    graph.emu.process()
    assert set(_directory(graph.emu)) == {"9300"}


def test_restarting_a_paused_job_purges_unprocessed_uploads(graph: Graph) -> None:
    graph.job_action("pause")
    graph.upload(bulk(user("9400")))
    response = graph.job_action(
        "restart", {"criteria": {"resetScope": "Watermark, Escrows, QuarantineState"}}
    )
    assert response.status_code == 204
    assert graph.job()["status"]["code"] == "Active"
    graph.emu.process()
    assert graph.emu.users() == []
    assert graph.emu.stats()["uploads_purged"] == 1


def _disable_all(graph: Graph, exts: list[str]) -> None:
    _send(graph, *[user(e, active=False) for e in exts])


def test_too_many_disables_quarantine_the_job_and_force_deletes_releases_them(graph: Graph) -> None:
    exts = [str(i) for i in range(9500, 9505)]
    _send(graph, *[user(e) for e in exts])
    graph.emu.configure_job(graph.app["job_id"], delete_threshold=2)
    _disable_all(graph, exts)

    enabled = {e: u["accountEnabled"] for e, u in _directory(graph.emu).items()}
    assert enabled == {"9500": False, "9501": False, "9502": True, "9503": True, "9504": True}
    status = graph.job()["status"]
    assert status["code"] == "Quarantine"
    assert status["quarantine"]["reason"] == "TooManyDeletes"
    staged = graph.job_logs("provisioningAction eq 'stageddelete'")
    assert sorted(e["sourceIdentity"]["id"] for e in staged) == ["9502", "9503", "9504"]
    assert {e["provisioningStatusInfo"]["status"] for e in staged} == {"skipped"}

    # Quarantined: new uploads wait.
    graph.upload(bulk(user("9599")))
    assert graph.emu.process()["processed_uploads"] == 0

    response = graph.job_action("restart", {"criteria": {"resetScope": "ForceDeletes, QuarantineState"}})
    assert response.status_code == 204
    graph.emu.process()
    directory = _directory(graph.emu)
    assert all(directory[e]["accountEnabled"] is False for e in exts)
    assert "9599" in directory
    released = _entries_for(graph, "9503")
    assert [e["provisioningAction"] for e in released][-2:] == ["stageddelete", "disable"]
    assert released[-1]["changeId"] == released[-2]["changeId"]
    assert graph.job()["status"]["code"] == "Active"


def test_restart_without_force_deletes_drops_held_disables(graph: Graph) -> None:
    exts = ["9600", "9601", "9602"]
    _send(graph, *[user(e) for e in exts])
    graph.emu.configure_job(graph.app["job_id"], delete_threshold=1)
    _disable_all(graph, exts)
    assert graph.job()["status"]["code"] == "Quarantine"
    graph.job_action("restart", {"criteria": {"resetScope": "QuarantineState"}})
    assert graph.job()["status"]["code"] == "Active"
    assert [u["accountEnabled"] for _, u in sorted(_directory(graph.emu).items())] == [False, True, True]


def test_job_status_reports_last_execution_counts(graph: Graph) -> None:
    _send(graph, user("9700"), user("9701", manager="9700"))
    job = graph.job()
    assert job["id"] == graph.app["job_id"]
    last = job["status"]["lastExecution"]
    assert last["state"] == "Succeeded"
    assert last["countImported"] == 2
    assert last["countExported"] == 2
    assert last["countImportedReferenceDeltas"] == 1
    assert job["status"]["synchronizedEntryCountByType"] == [{"key": "User", "value": 2}]
    assert {"name": "QuarantineTooManyDeletesThreshold", "value": "500"} in job["synchronizationJobSettings"]


def test_job_control_errors(graph: Graph) -> None:
    response = graph.job_action("restart", {"criteria": {"resetScope": "Everything"}})
    assert response.status_code == 400
    assert "Everything" in response.json()["error"]["message"]
    graph.app = {**graph.app, "service_principal_id": "00000000-0000-0000-0000-000000000000"}
    assert graph.request("GET", graph.job_url).status_code == 404


def test_schema_api_declares_and_maps_custom_attributes(graph: Graph) -> None:
    schema_url = f"{graph.job_url}/schema"
    schema = graph.request("GET", schema_url).json()
    (api_directory,) = [d for d in schema["directories"] if d["name"] == "API"]
    attributes = api_directory["objects"][0]["attributes"]
    assert "externalId" in {a["name"] for a in attributes}
    mappings = schema["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"]
    assert {"name": "externalId", "target": "employeeId"} in [
        {"name": m["source"]["name"], "target": m["targetAttributeName"]} for m in mappings
    ]

    # Declared only: still flows nowhere.
    attributes.append({"name": f"{CUSTOM}:CostCode", "type": "String"})
    assert graph.request("PUT", schema_url, json=schema).status_code == 204
    _send(graph, _custom_user("9800", CostCode="X1"))
    assert "extension_costCode" not in _directory(graph.emu)["9800"]

    # Declared and mapped: flows.
    mappings.append(
        {
            "source": {
                "name": f"{CUSTOM}:CostCode",
                "type": "Attribute",
                "expression": f"[{CUSTOM}:CostCode]",
            },
            "targetAttributeName": "extension_costCode",
        }
    )
    assert graph.request("PUT", schema_url, json=schema).status_code == 204
    _send(graph, _custom_user("9800", CostCode="X2"))
    assert _directory(graph.emu)["9800"]["extension_costCode"] == "X2"
    again = graph.request("GET", schema_url).json()
    again_mappings = again["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"]
    assert any(m["targetAttributeName"] == "extension_costCode" for m in again_mappings)


def test_schema_mapping_of_an_undeclared_attribute_is_400(graph: Graph) -> None:
    schema_url = f"{graph.job_url}/schema"
    schema = graph.request("GET", schema_url).json()
    schema["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"].append(
        {"source": {"name": f"{CUSTOM}:Nope", "type": "Attribute"}, "targetAttributeName": "department"}
    )
    response = graph.request("PUT", schema_url, json=schema)
    assert response.status_code == 400
    assert f"{CUSTOM}:Nope" in response.json()["error"]["message"]
    assert graph.request("PUT", schema_url, json={"no": "directories"}).status_code == 400
