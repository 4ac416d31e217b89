/*
 * Business rule: "slm-sync: SLA breached"
 *   Table: Task SLA [task_sla]   Advanced: true
 *   When: after   Insert: true   Update: true   Order: 1000
 *   Condition: current.has_breached.changesTo(true)
 *
 * Tells slm-sync which Task SLA breached and the service it counts for: slm-sync reads that
 * one record (with the fields its poll reads) and refreshes only that service's review pack
 * and ticket now, instead of at the next poll. Needs the Script Include SlmSyncWebhook.
 * "after" (not "async") because changesTo() needs the previous value; the HTTP call itself
 * is asynchronous (RESTMessageV2.executeAsync), so the SLA job is not slowed down.
 */
(function executeRule(current, previous /*null when async*/) {
    // The service is the task's Business service (incident.business_service), the same field
    // slm-sync's mapping reads for SLA records (config/mappings/servicenow.yaml).
    var service = current.task.business_service;
    if (service.nil()) {
        return;
    }
    new SlmSyncWebhook().send('task_sla.breached', service.toString(), 'task_sla', current.getUniqueValue());
})(current, previous);
