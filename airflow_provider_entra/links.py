"""Extra links from Entra tasks to the provisioning job's logs.

Airflow 3 computes extra links on the worker when a task finishes and stores each URL as an XCom under the
link's :attr:`~airflow.sdk.BaseOperatorLink.xcom_key`; the UI only reads that XCom. The operators call
:meth:`EntraProvisioningLogsLink.persist` while they run (when the hook, and so the job, is known), and
:meth:`EntraProvisioningLogsLink.get_link` returns what was persisted. Airflow 2.11's webserver calls
:meth:`~EntraProvisioningLogsLink.get_link` itself, which reads the same XCom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, Context, TaskInstanceKey

__all__ = ["EntraProvisioningLogsLink"]


class EntraProvisioningLogsLink(BaseOperatorLink):
    """ "Entra provisioning logs": the job's provisioning logs in the Entra portal (or, for a connection to a
    non-Microsoft host such as the local emulator, the Graph logs query for the job)."""

    name = "Entra provisioning logs"

    if not hasattr(BaseOperatorLink, "xcom_key"):  # Airflow 2.11: the same key Airflow 3 derives
        xcom_key = "_link_EntraProvisioningLogsLink"

    @classmethod
    def persist(cls, context: Context | dict[str, Any], url: str) -> None:
        """Store the URL for this task instance (call it from ``execute``).

        :param context: the task context; without a task instance (``ti``) nothing is stored.
        :param url: the link, usually :meth:`EntraHook.portal_logs_url`.
        """
        ti = context.get("ti") if hasattr(context, "get") else None
        if ti is None:
            return
        ti.xcom_push(key=cls().xcom_key, value=url)

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The persisted URL, or ``""`` when the task has not stored one (yet).

        :param operator: the task (unused: the URL depends on the connection, read at run time).
        :param ti_key: the task instance.
        """
        value = XCom.get_value(ti_key=ti_key, key=self.xcom_key)
        return value if isinstance(value, str) else ""
