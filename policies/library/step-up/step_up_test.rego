package mandate.authz

import rego.v1

now_ms := 1700000000000

now_s := 1700000000

request(action, attributes) := {
	"version": 1,
	"tenant": "acme",
	"subject": {"id": "alice", "kind": "human", "attributes": attributes},
	"actors": [],
	"action": action,
	"resource": {"type": "payment", "id": "p-1", "attributes": {}},
	"token": {"scopes": [], "aud": [], "authorization_details": []},
	"context": {"time": now_ms},
}

mfa_now := {"acr": "urn:mandate:acr:mfa", "amr": ["pwd", "otp", "mfa"], "auth_time": now_s - 60}

password_now := {"acr": "urn:mandate:acr:pwd", "amr": ["pwd"], "auth_time": now_s - 60}

challenge := {"type": "step_up", "acr_values": "urn:mandate:acr:mfa", "max_age": 300}

codes(d) := [r.code | some r in d.reasons]

# Not sensitive: allowed whatever the authentication

test_not_sensitive_allowed if {
	d := decision with input as request("orders.read", {})
	d == {"allow": true, "reasons": [], "obligations": []}
}

test_not_sensitive_with_password_allowed if {
	decision.allow with input as request("keys.read", password_now)
}

# Sensitive with a strong, fresh authentication

test_sensitive_with_mfa_allowed if {
	d := decision with input as request("payments.create", mfa_now)
	d == {"allow": true, "reasons": [], "obligations": []}
}

test_sensitive_exact_action if {
	decision.allow with input as request("keys.delete", mfa_now)
	not decision.allow with input as request("keys.delete", password_now)
}

test_accepted_acr_alone_suffices if {
	decision.allow with input as request("payments.create", {"acr": "urn:mandate:acr:phr", "amr": ["hwk"], "auth_time": now_s})
}

test_mfa_amr_alone_suffices if {
	decision.allow with input as request("payments.create", {"amr": ["pwd", "mfa"], "auth_time": now_s})
}

# Sensitive without a strong authentication: deny, with the challenge

test_sensitive_with_password_needs_step_up if {
	d := decision with input as request("payments.create", password_now)
	not d.allow
	d.reasons == [{"code": "step_up_required", "message": "payments.create needs a stronger authentication (urn:mandate:acr:mfa)"}]
	d.obligations == [challenge]
}

test_unauthenticated_subject_needs_step_up if {
	d := decision with input as request("admin.users.delete", {})
	not d.allow
	codes(d) == ["authentication_too_old", "step_up_required"]
	d.obligations == [challenge]
}

test_unknown_acr_does_not_count if {
	d := decision with input as request("payments.create", {"acr": "urn:other:gold", "amr": ["pwd", "sms"], "auth_time": now_s})
	codes(d) == ["step_up_required"]
}

test_family_pattern_needs_the_dot if {
	decision.allow with input as request("paymentsx.create", password_now)
	decision.allow with input as request("admin", password_now)
}

# Freshness (max_age)

test_authentication_too_old if {
	stale := object.union(mfa_now, {"auth_time": now_s - 301})
	d := decision with input as request("payments.create", stale)
	not d.allow
	d.reasons == [{"code": "authentication_too_old", "message": "payments.create needs an authentication within the last 300 seconds"}]
	d.obligations == [challenge]
}

test_authentication_at_max_age_is_fresh if {
	decision.allow with input as request("payments.create", object.union(mfa_now, {"auth_time": now_s - 300}))
}

test_no_auth_time_is_not_fresh if {
	d := decision with input as request("payments.create", object.remove(mfa_now, ["auth_time"]))
	codes(d) == ["authentication_too_old"]
}

test_both_reasons_one_obligation if {
	d := decision with input as request("payments.create", object.union(password_now, {"auth_time": now_s - 3600}))
	codes(d) == ["authentication_too_old", "step_up_required"]
	d.obligations == [challenge]
}

test_without_max_age_no_freshness_check if {
	config := object.remove(data.step_up, ["max_age"])
	decision.allow with input as request("payments.create", object.remove(mfa_now, ["auth_time"])) with data.step_up as config
	d := decision with input as request("payments.create", password_now) with data.step_up as config
	d.obligations == [{"type": "step_up", "acr_values": "urn:mandate:acr:mfa"}]
}

# Configuration

test_configured_acr_values if {
	config := {"sensitive_actions": ["*"], "acr_values": "urn:example:acr:gold"}
	d := decision with input as request("anything", {"acr": "urn:mandate:acr:mfa"}) with data.step_up as config
	not d.allow
	d.obligations == [{"type": "step_up", "acr_values": "urn:example:acr:gold"}]
	decision.allow with input as request("anything", {"acr": "urn:example:acr:gold"}) with data.step_up as config
	decision.allow with input as request("anything", {"amr": ["mfa"]}) with data.step_up as config
}

test_default_acr_values if {
	d := decision with input as request("x.y", {}) with data.step_up as {"sensitive_actions": ["x.*"]}
	d.obligations == [{"type": "step_up", "acr_values": "urn:mandate:acr:mfa"}]
}

test_accepted_amr_configurable if {
	config := object.union(data.step_up, {"accepted_amr": ["hwk"]})
	decision.allow with input as request("payments.create", {"amr": ["hwk"], "auth_time": now_s}) with data.step_up as config
	not decision.allow with input as request("payments.create", {"amr": ["mfa"], "auth_time": now_s}) with data.step_up as config
}

test_nothing_sensitive_without_configuration if {
	decision.allow with input as request("payments.create", {}) with data.step_up as {}
}

test_amr_not_a_list if {
	d := decision with input as request("payments.create", {"amr": "mfa", "auth_time": now_s})
	codes(d) == ["step_up_required"]
}
