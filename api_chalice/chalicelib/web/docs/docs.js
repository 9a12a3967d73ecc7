// The interactive documentation: loads /openapi.json (asking for an API key when the deployment
// needs one) and hands it to Swagger UI, vendored beside this file. Relative URLs throughout, so
// the page works at /docs behind NGINX and at /<stage>/docs behind API Gateway alike.

const specUrl = new URL("openapi.json", window.location.href);
// Where the API's routes live: the directory of this page (the stage's root in AWS).
const serverUrl = new URL(".", window.location.href).href.replace(/\/$/, "");
const status = document.getElementById("rdc-status");
const form = document.getElementById("rdc-key");
const keyInput = document.getElementById("rdc-key-input");
const keyError = document.getElementById("rdc-key-error");

async function loadSpec(key) {
  const headers = key ? { "x-api-key": key } : {};
  const response = await fetch(specUrl, { headers, cache: "no-store" });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (response.status === 401 || response.status === 403) {
    return { needsKey: true, message: body && body.message ? body.message : "an API key is needed" };
  }
  if (!response.ok || body === null) {
    const why = body && body.message ? body.message : `HTTP ${response.status}`;
    throw new Error(`openapi.json could not be loaded: ${why}`);
  }
  return { spec: body };
}

function startSwaggerUi(spec, key) {
  spec.servers = [{ url: serverUrl, description: "this deployment" }];
  const ui = window.SwaggerUIBundle({
    spec,
    dom_id: "#swagger-ui",
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    displayRequestDuration: true,
    displayOperationId: true,
    // No call to the public validator service: nothing leaves this origin.
    validatorUrl: null,
    requestInterceptor: (request) => {
      if (key) {
        request.headers["x-api-key"] = key;
      }
      return request;
    },
  });
  if (key) {
    ui.preauthorizeApiKey("ApiKey", key);
  }
  status.textContent = `${Object.keys(spec.paths).length} routes, API ${spec.info.version}`;
}

async function open(key) {
  const result = await loadSpec(key);
  if (result.needsKey) {
    form.hidden = false;
    status.textContent = "API key needed";
    keyError.textContent = key ? result.message : "";
    keyInput.focus();
    return;
  }
  form.hidden = true;
  startSwaggerUi(result.spec, key);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  open(keyInput.value.trim()).catch(showFailure);
});

function showFailure(error) {
  status.textContent = error.message;
}

open(null).catch(showFailure);
