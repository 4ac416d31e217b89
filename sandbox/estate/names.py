"""Name pools for the seeded estate: plausible people, services and CMDB component kinds."""

from __future__ import annotations

FIRST_NAMES = (
    "Anna", "Ben", "Carla", "David", "Elif", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kemal",
    "Lena", "Marek", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tamara", "Umar",
    "Vera", "Wen", "Xavier", "Yara", "Zoltan", "Amelie", "Bruno", "Chloe", "Dmitri", "Emma",
    "Felix", "Gabriela", "Hannes", "Isabel", "Julian", "Katja", "Luis", "Mia", "Noah",
)  # fmt: skip
LAST_NAMES = (
    "Keller", "Novak", "Schmidt", "Rossi", "Dubois", "Yilmaz", "Kowalski", "Tanaka", "Garcia",
    "Jansen", "Lindqvist", "Moreau", "Okafor", "Petrov", "Quinn", "Richter", "Silva", "Torres",
    "Ueda", "Varga", "Weber", "Xu", "Young", "Zimmermann", "Bauer", "Costa", "Dietrich", "Engel",
    "Fischer", "Hoffmann", "Ivanova", "Jung", "Kraus", "Lang", "Meyer", "Nowak",
)  # fmt: skip
TITLES = (
    "Service Owner", "IT Operations Manager", "Application Manager", "Platform Engineer",
    "Database Administrator", "Head of Finance", "Head of HR", "Chief Operating Officer",
    "Service Desk Lead", "Network Engineer", "Security Engineer", "Product Manager",
)  # fmt: skip
SERVICE_NAMES = (
    "Email and Calendar", "Payroll", "Customer Portal", "ERP Finance", "HR Self-Service",
    "Identity & Access Management", "Service Desk Telephony", "Data Warehouse",
    "E-Commerce Checkout", "VPN Remote Access", "Document Management", "CRM Sales",
    "Logistics Tracking", "Video Conferencing", "Print Services", "Procurement",
)  # fmt: skip
# Quotes, a caret, an equals sign and non-ASCII letters: everything that breaks naive JQL,
# encoded queries, labels and file names.
SPECIAL_SERVICE_NAME = 'Zahlungsverkehr "Überweisung" ^ SEPA=EU Straße'
# (sys_class_name, name suffix) of the CIs a service is built from.
COMPONENT_KINDS = (
    ("cmdb_ci_app_server", "App Server"),
    ("cmdb_ci_db_instance", "Database"),
    ("cmdb_ci_linux_server", "Linux Host"),
    ("cmdb_ci_win_server", "Windows Host"),
    ("cmdb_ci_lb", "Load Balancer"),
    ("cmdb_ci_cloud_service_account", "Cloud Account"),
)
INCIDENT_SUMMARIES = (
    "Users cannot log in", "Page loads time out", "Batch job failed overnight",
    "Reports show stale data", "Error 500 on submit", "Slow response during peak hours",
    "Certificate expired", "Disk full on host", "Integration queue stuck",
    "Password reset emails not sent", "Mobile app crashes on start", "Missing records after sync",
)  # fmt: skip
