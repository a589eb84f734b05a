"""What each root field of the API needs: the one table the scope matrix test reads.

Every root Query/Mutation/Subscription field of the built schema must have a row here, or
tests/tenants/test_scope_matrix.py fails: a new field gets its row in the same change (see
/work/helpers/SCOPES.md and docs/access.md for the vocabulary).

    a Scope   the caller must hold it (users: their role's scopes; keys: theirs)
    ANY       any authenticated principal
    USER      any authenticated user (not an API key)
    NONE      no credentials needed (login and the e-mailed-link mutations)
    NODE      the type's own read rule (schema.nodes.NODE_SCOPES), tested per type
"""

from __future__ import annotations

from tenants.scopes import Scope

ANY = "any"
USER = "user"
NONE = "none"
NODE = "node"

S = Scope
EXPECTED: dict[str, Scope | str] = {
    # tenants: who am I, sessions, passwords
    "Query.me": ANY, "Query.tenant": ANY, "Query.node": NODE,
    "Mutation.login": NONE, "Mutation.refresh": NONE, "Mutation.requestPasswordReset": NONE,
    "Mutation.resetPassword": NONE, "Mutation.acceptInvitation": NONE,
    "Mutation.logout": ANY, "Mutation.changePassword": USER,
    # tenant administration
    "Query.teams": S.DEALS_READ, "Query.users": S.DEALS_READ,
    "Query.apiKeys": S.USERS_ADMIN, "Query.auditEvents": S.USERS_ADMIN,
    "Mutation.createTeam": S.USERS_ADMIN, "Mutation.createUser": S.USERS_ADMIN,
    "Mutation.inviteUser": S.USERS_ADMIN, "Mutation.updateUser": S.USERS_ADMIN,
    "Mutation.deactivateUser": S.USERS_ADMIN, "Mutation.reactivateUser": S.USERS_ADMIN,
    "Mutation.createApiKey": S.USERS_ADMIN, "Mutation.rotateApiKey": S.USERS_ADMIN,
    "Mutation.revokeApiKey": S.USERS_ADMIN,
    # pipelines
    "Query.segments": S.DEALS_READ, "Query.customFields": S.DEALS_READ,
    "Mutation.createSegment": S.PIPELINES_WRITE, "Mutation.addStage": S.PIPELINES_WRITE,
    "Mutation.updateStage": S.PIPELINES_WRITE, "Mutation.reorderStages": S.PIPELINES_WRITE,
    "Mutation.archiveStage": S.PIPELINES_WRITE, "Mutation.deleteStage": S.PIPELINES_WRITE,
    "Mutation.defineCustomField": S.PIPELINES_WRITE,
    "Query.defaultStageTemplate": S.DEALS_READ,
    "Mutation.updateSegment": S.PIPELINES_WRITE, "Mutation.archiveSegment": S.PIPELINES_WRITE,
    "Mutation.restoreSegment": S.PIPELINES_WRITE,
    "Mutation.setDefaultStageTemplate": S.PIPELINES_WRITE,
    "Mutation.updateCustomField": S.PIPELINES_WRITE,
    "Mutation.archiveCustomField": S.PIPELINES_WRITE,
    "Mutation.restoreCustomField": S.PIPELINES_WRITE,
    "Mutation.renameTeam": S.USERS_ADMIN, "Mutation.deleteTeam": S.USERS_ADMIN,
    "Query.exchangeRates": S.DEALS_READ, "Mutation.setExchangeRate": S.USERS_ADMIN,
    "Mutation.deleteExchangeRate": S.USERS_ADMIN,
    # deals
    "Query.board": S.DEALS_READ, "Query.deals": S.DEALS_READ, "Query.stageEvents": S.DEALS_READ,
    "Mutation.createDeal": S.DEALS_WRITE, "Mutation.updateDeal": S.DEALS_WRITE,
    "Mutation.moveDeal": S.DEALS_WRITE, "Mutation.transferDeal": S.DEALS_WRITE,
    "Mutation.createActivity": S.DEALS_WRITE, "Mutation.completeActivity": S.DEALS_WRITE,
    "Mutation.archiveDeal": S.DEALS_WRITE, "Mutation.restoreDeal": S.DEALS_WRITE,
    "Mutation.bulkUpdateDeals": S.DEALS_WRITE,
    "Mutation.updateActivity": S.DEALS_WRITE, "Mutation.deleteActivity": S.DEALS_WRITE,
    "Mutation.deleteDeal": S.PRIVACY_ADMIN,  # permanent: an admin-only data-governance act
    "Subscription.boardEvents": S.DEALS_READ, "Subscription.dealEvents": S.DEALS_READ,
    # contacts
    "Query.companies": S.CONTACTS_READ, "Query.contacts": S.CONTACTS_READ,
    "Query.contactsConnection": S.CONTACTS_READ, "Query.companiesConnection": S.CONTACTS_READ,
    "Mutation.createCompany": S.CONTACTS_WRITE, "Mutation.createContact": S.CONTACTS_WRITE,
    "Mutation.updateContact": S.CONTACTS_WRITE, "Mutation.deleteContact": S.CONTACTS_WRITE,
    "Mutation.mergeContacts": S.CONTACTS_WRITE, "Mutation.updateCompany": S.CONTACTS_WRITE,
    "Mutation.deleteCompany": S.CONTACTS_WRITE, "Mutation.mergeCompanies": S.CONTACTS_WRITE,
    # analytics, planning, forecasts
    "Query.pipelineAnalytics": S.ANALYTICS_READ, "Query.staleDeals": S.ANALYTICS_READ,
    "Query.planFact": S.ANALYTICS_READ, "Query.planFactHistory": S.ANALYTICS_READ,
    "Query.forecasts": S.ANALYTICS_READ, "Query.forecastAccuracy": S.ANALYTICS_READ,
    "Query.revenuePlan": S.ANALYTICS_READ,
    "Subscription.forecastUpdated": S.ANALYTICS_READ,
    "Mutation.setTarget": S.TARGETS_WRITE, "Mutation.deleteTarget": S.TARGETS_WRITE, "Mutation.requestForecast": S.FORECASTS_WRITE,
    # campaigns
    "Query.campaigns": S.CAMPAIGNS_READ, "Query.campaign": S.CAMPAIGNS_READ,
    "Query.campaignEnrollments": S.CAMPAIGNS_READ,
    "Mutation.createCampaign": S.CAMPAIGNS_WRITE, "Mutation.updateCampaign": S.CAMPAIGNS_WRITE,
    "Mutation.pauseCampaign": S.CAMPAIGNS_WRITE, "Mutation.resumeCampaign": S.CAMPAIGNS_WRITE,
    "Mutation.archiveCampaign": S.CAMPAIGNS_WRITE, "Mutation.deleteCampaign": S.CAMPAIGNS_WRITE,
    "Mutation.markReplied": S.DEALS_WRITE,  # about the deal: its row rules apply
    # personal data
    "Query.exportPersonalData": S.PRIVACY_ADMIN, "Mutation.eraseContact": S.PRIVACY_ADMIN,
    # webhooks
    "Query.webhookEndpoints": S.WEBHOOKS_WRITE, "Query.webhookDeliveries": S.WEBHOOKS_WRITE,
    "Mutation.createWebhookEndpoint": S.WEBHOOKS_WRITE,
    "Mutation.updateWebhookEndpoint": S.WEBHOOKS_WRITE,
    "Mutation.pauseWebhookEndpoint": S.WEBHOOKS_WRITE,
    "Mutation.resumeWebhookEndpoint": S.WEBHOOKS_WRITE,
    "Mutation.rotateWebhookSecret": S.WEBHOOKS_WRITE,
    "Mutation.deleteWebhookEndpoint": S.WEBHOOKS_WRITE,
    "Mutation.redeliverWebhook": S.WEBHOOKS_WRITE, "Mutation.redeliverWebhooks": S.WEBHOOKS_WRITE,
    # imports and exports
    "Query.importJob": S.IMPORTS_WRITE, "Query.imports": S.IMPORTS_WRITE,
    "Query.importDryRun": S.IMPORTS_WRITE, "Mutation.startImport": S.IMPORTS_WRITE,
    "Subscription.importProgress": S.IMPORTS_WRITE,
    "Query.exportJob": S.EXPORTS_READ, "Mutation.requestExport": S.EXPORTS_READ,
}

# Each Node type's own query: node(id) must need the same scope (test_node_rules.py).
OWN_QUERY: dict[str, str] = {
    "Deal": "Query.deals", "Activity": "Query.deals", "Stage": "Query.segments",
    "Pipeline": "Query.segments", "Segment": "Query.segments", "User": "Query.users",
    "Team": "Query.teams", "Contact": "Query.contacts", "Company": "Query.companies",
    "Forecast": "Query.forecasts", "Campaign": "Query.campaigns",
    "CampaignEnrollment": "Query.campaignEnrollments", "ApiKey": "Query.apiKeys",
}
