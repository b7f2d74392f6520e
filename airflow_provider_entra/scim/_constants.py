"""Protocol facts and Entra limits the SCIM layer is built on.

Kept private to ``scim/`` so the pure layer imports nothing from the Airflow side of the package.
Each fact names the page that states it.
"""

from __future__ import annotations

#: RFC 7643 section 4.1: the core User schema.
CORE_USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
#: RFC 7643 section 4.3: the enterprise User extension.
ENTERPRISE_USER_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
#: RFC 7644 section 3.7: the bulk request message.
BULK_REQUEST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
#: Prefix of every extension namespace; Entra's custom attributes live under
#: ``urn:ietf:params:scim:schemas:extension:<name>:<version>:User``
#: (https://learn.microsoft.com/entra/identity/app-provisioning/inbound-provisioning-api-custom-attributes).
EXTENSION_SCHEMA_PREFIX = "urn:ietf:params:scim:schemas:extension:"

#: At most 50 operations per bulkUpload request
#: (https://learn.microsoft.com/entra/identity/app-provisioning/inbound-provisioning-api-faqs).
MAX_OPERATIONS_PER_REQUEST = 50
#: Every operation is a POST to /Users: create, update, enable and disable alike
#: (https://learn.microsoft.com/graph/api/synchronization-synchronizationjob-post-bulkupload).
BULK_OPERATION_METHOD = "POST"
BULK_OPERATION_PATH = "/Users"

#: Enterprise extension manager reference: the manager's externalId.
MANAGER_PATH = f"{ENTERPRISE_USER_SCHEMA}:manager.value"

# Entra user property limits, in characters, for the SCIM attributes that Entra's default API-driven
# attribute mapping sends to each property. Source: the Microsoft Graph user resource type
# (https://learn.microsoft.com/graph/api/resources/user), which states "Maximum length is N" for each;
# userPrincipalName from Entra's username policy (https://learn.microsoft.com/entra/identity/authentication/
# concept-sspr-policy#username-policies): at most 113 characters, 64 before the @ and 48 after.
# A mapping can override or drop a limit per attribute with ``max_length`` (for example when the app's
# attribute mapping sends externalId somewhere other than employeeId).
EMPLOYEE_ID_MAX_LENGTH = 16  # user.employeeId <- externalId
USER_PRINCIPAL_NAME_MAX_LENGTH = 113  # user.userPrincipalName <- userName
DISPLAY_NAME_MAX_LENGTH = 256  # user.displayName <- displayName
GIVEN_NAME_MAX_LENGTH = 64  # user.givenName <- name.givenName
SURNAME_MAX_LENGTH = 64  # user.surname <- name.familyName
MAIL_NICKNAME_MAX_LENGTH = 64  # user.mailNickname <- nickName
JOB_TITLE_MAX_LENGTH = 128  # user.jobTitle <- title
DEPARTMENT_MAX_LENGTH = 64  # user.department <- enterprise department
COMPANY_NAME_MAX_LENGTH = 64  # user.companyName <- enterprise organization
CITY_MAX_LENGTH = 128  # user.city <- addresses[type eq "work"].locality
COUNTRY_MAX_LENGTH = 128  # user.country <- addresses[type eq "work"].country
STATE_MAX_LENGTH = 128  # user.state <- addresses[type eq "work"].region
POSTAL_CODE_MAX_LENGTH = 40  # user.postalCode <- addresses[type eq "work"].postalCode
STREET_ADDRESS_MAX_LENGTH = 1024  # user.streetAddress <- addresses[type eq "work"].streetAddress
MOBILE_PHONE_MAX_LENGTH = 64  # user.mobilePhone <- phoneNumbers[type eq "mobile"].value
#: String directory extension properties hold at most 256 characters
#: (https://learn.microsoft.com/graph/api/resources/extensionproperty); applied to custom namespace strings.
EXTENSION_STRING_MAX_LENGTH = 256

ENTRA_STRING_LIMITS: dict[str, int] = {
    "externalId": EMPLOYEE_ID_MAX_LENGTH,
    "userName": USER_PRINCIPAL_NAME_MAX_LENGTH,
    "displayName": DISPLAY_NAME_MAX_LENGTH,
    "name.givenName": GIVEN_NAME_MAX_LENGTH,
    "name.familyName": SURNAME_MAX_LENGTH,
    "nickName": MAIL_NICKNAME_MAX_LENGTH,
    "title": JOB_TITLE_MAX_LENGTH,
    f"{ENTERPRISE_USER_SCHEMA}:department": DEPARTMENT_MAX_LENGTH,
    f"{ENTERPRISE_USER_SCHEMA}:organization": COMPANY_NAME_MAX_LENGTH,
    'addresses[type eq "work"].locality': CITY_MAX_LENGTH,
    'addresses[type eq "work"].country': COUNTRY_MAX_LENGTH,
    'addresses[type eq "work"].region': STATE_MAX_LENGTH,
    'addresses[type eq "work"].postalCode': POSTAL_CODE_MAX_LENGTH,
    'addresses[type eq "work"].streetAddress': STREET_ADDRESS_MAX_LENGTH,
    'phoneNumbers[type eq "mobile"].value': MOBILE_PHONE_MAX_LENGTH,
}
