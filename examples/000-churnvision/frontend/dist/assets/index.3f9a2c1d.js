document.getElementById("root").dataset.ready = "1";
