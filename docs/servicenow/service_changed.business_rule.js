/*
 * Business rule: "slm-sync: service changed"
 *   Table: Service [cmdb_ci_service]   Advanced: true
 *   When: after   Insert: true   Update: true   Order: 1000
 *   Condition: current.sys_class_name == 'cmdb_ci_service' && (current.name.changes()
 *              || current.owned_by.changes() || current.operational_status.changes()
 *              || current.busines_criticality.changes() || current.u_business_owner.changes()
 *              || current.u_lt_sponsor.changes())
 *
 * Tells slm-sync that a service it reviews changed (its owner, the Service Level Manager of
 * the review, its business owner, LT sponsor, tier or status), so the review's RACI
 * assignments and pack follow now. List in the condition the fields your slm-sync mapping
 * reads (config/mappings/servicenow.yaml); drop u_business_owner / u_lt_sponsor if your
 * instance has no such columns. sys_class_name keeps service offerings (which extend
 * cmdb_ci_service) out, as slm-sync's default service filter does.
 */
(function executeRule(current, previous /*null when async*/) {
    new SlmSyncWebhook().send('service.changed', current.getUniqueValue(), 'cmdb_ci_service', current.getUniqueValue());
})(current, previous);
