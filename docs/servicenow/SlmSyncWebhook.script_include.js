/*
 * Script Include: SlmSyncWebhook
 *   Name: SlmSyncWebhook   Application: Global   Accessible from: This application scope only
 *   Client callable: false
 *
 * Sends one signed event to slm-sync's POST /webhooks/servicenow (see docs/webhooks.md).
 * Called by the business rules "slm-sync: SLA breached" and "slm-sync: service changed".
 *
 * System properties (System Properties > New):
 *   slm_sync.webhook.url     string     https://slm-sync.example.com/webhooks/servicenow
 *   slm_sync.webhook.secret  password2  the same value as slm-sync's webhooks.servicenow_secret
 *                                       (secret file slm_sync_webhooks__servicenow_secret);
 *                                       use an ASCII secret, e.g. `openssl rand -hex 32`
 *
 * What slm-sync checks (sync/webhooks/receiver.py, auth.py; docs/webhooks.md):
 *   Content-Type:    application/json, or the request gets 415
 *   X-SLM-Timestamp: Unix seconds; refused when more than webhooks.max_skew_seconds (300) off
 *   X-SLM-Signature: "sha256=" + base64(HMAC-SHA256(secret, timestamp + "." + body)), exactly as
 *                    generateMac writes it (standard, padded); lower-case hex is accepted too
 *   X-SLM-Delivery:  a GUID, remembered against replays (and so is the signature's digest)
 * The body holds only ASCII (event names and sys_ids), so both sides sign the same bytes.
 */
var SlmSyncWebhook = Class.create();
SlmSyncWebhook.prototype = {
    initialize: function() {
        this.url = gs.getProperty('slm_sync.webhook.url', '');
        this.secret = gs.getProperty('slm_sync.webhook.secret', '');
    },

    /*
     * event:   'task_sla.breached' or 'service.changed'
     * service: sys_id of the cmdb_ci_service whose review the change belongs to
     * table, record: the record that changed. A task_sla is also sent as "task_sla": slm-sync
     *          reads exactly that record (one call) and rebuilds only its service's review;
     *          for a service, slm-sync reads that service.
     */
    send: function(event, service, table, record) {
        if (!this.url || !this.secret) {
            gs.warn('SlmSyncWebhook: slm_sync.webhook.url or slm_sync.webhook.secret is not set');
            return;
        }
        if (!service) {
            return; // nothing slm-sync could re-read; its poll covers the rest
        }
        var payload = {
            event: event,
            service: String(service),
            table: String(table),
            record: String(record)
        };
        if (String(table) == 'task_sla') {
            payload.task_sla = String(record);
        }
        var body = JSON.stringify(payload);
        var timestamp = String(Math.floor(new GlideDateTime().getNumericValue() / 1000));
        // generateMac takes the key base64-encoded and answers base64.
        var key = GlideStringUtil.base64Encode(this.secret);
        var mac = new GlideCertificateEncryption().generateMac(key, 'HmacSHA256', timestamp + '.' + body);

        var request = new sn_ws.RESTMessageV2();
        request.setEndpoint(this.url);
        request.setHttpMethod('post');
        request.setHttpTimeout(10000);
        request.setRequestHeader('Content-Type', 'application/json');
        request.setRequestHeader('X-SLM-Timestamp', timestamp);
        request.setRequestHeader('X-SLM-Signature', 'sha256=' + mac);
        request.setRequestHeader('X-SLM-Delivery', gs.generateGUID());
        request.setRequestBody(body);
        // Asynchronous: the SLA job or the user saving a service never waits for slm-sync.
        // A lost event is not lost work: slm-sync's poll reads the same change later.
        request.executeAsync();
    },

    type: 'SlmSyncWebhook'
};
