/* /docs: Swagger UI over /openapi.json. Its files are served by the app and started here,
 * not by an inline script (the Content-Security-Policy allows none). "Try it out" requests
 * carry the CSRF header like the dashboard's own. */

import { cookie } from "../lib/api.js";

window.SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  deepLinking: true,
  validatorUrl: null, // the default sends the schema to a public validator
  requestInterceptor: (request) => {
    const token = cookie("rl_csrf");
    if (token && request.method && request.method !== "GET") request.headers["X-CSRF-Token"] = token;
    return request;
  },
});
