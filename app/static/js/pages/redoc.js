/* /redoc: ReDoc over /openapi.json, files served by the app, started without inline script. */

window.Redoc.init("/openapi.json", { hideDownloadButton: false, disableSearch: false }, document.getElementById("redoc"));
