# A partner's verdict over HTTP, for deployments that run this policy in OPA with network access.
# Mandate refuses http.send (a decision never waits on the network), so `decision` does not use
# it; Mandate compiles it wherever a `with` replaces http.send, as the tests below do.
package mandate.partner

import rego.v1

# The partner allows the request when it answers 200 with {"allow": true}.
allows(request) if {
	response := http.send({"method": "POST", "url": data.partner.url, "body": request, "timeout": "2s"})
	response.status_code == 200
	response.body.allow == true
}
