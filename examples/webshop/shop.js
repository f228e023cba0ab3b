// The example shop's own behaviour (cart in localStorage, search, checkout checks) and its calls to
// the nextchannel tracker API. The tracker is configured here and loaded after this file.

// The layout every page shares, written once: the header with the navigation, and the consent bar
// (built before the tracker loads, which asks for consent through it).
(function layout() {
  var header = document.createElement("header");
  header.innerHTML = '<strong>Example shop</strong><a href="/">Home</a><a href="product.html">Products</a>' +
    '<a href="cart.html">Cart</a><a href="checkout.html">Checkout</a><a href="help.html">Help</a>';
  document.body.insertBefore(header, document.body.firstChild);
  var bar = document.createElement("div");
  bar.id = "consent";
  bar.hidden = true;
  bar.innerHTML = "This shop may offer you help (chat, callback, ...) based on how you browse. " +
    '<button id="consent-yes">Allow</button> <button id="consent-no">No</button>';
  document.body.appendChild(bar);
})();
window.nextchannelConfig = {
  endpoint: "",
  idleSeconds: 10,
  consent: function (allow) {
    if (localStorage.getItem("shop-consent") === "yes") return true;
    var bar = document.getElementById("consent");
    bar.hidden = false;
    document.getElementById("consent-yes").onclick = function () {
      localStorage.setItem("shop-consent", "yes"); bar.hidden = true; allow(true);
    };
    document.getElementById("consent-no").onclick = function () { bar.hidden = true; allow(false); };
  }
};
var PRODUCTS = { kettle: { name: "Kettle", price: 30 }, lamp: { name: "Desk lamp", price: 45 } };
function cart() { return JSON.parse(localStorage.getItem("shop-cart") || "[]"); }
function saveCart(c) { localStorage.setItem("shop-cart", JSON.stringify(c)); }
function addToCart(id) {
  var c = cart(); c.push(id); saveCart(c);
  nextchannel.track("cart_add", { value: PRODUCTS[id].price });
  document.getElementById("added").textContent = PRODUCTS[id].name + " added to the cart.";
}
function removeFromCart(i) {
  var c = cart(), id = c.splice(i, 1)[0]; saveCart(c);
  nextchannel.track("cart_remove", { value: PRODUCTS[id].price });
  renderCart();
}
function renderCart() {
  var ul = document.getElementById("cart-items"); if (!ul) return;
  ul.innerHTML = "";
  cart().forEach(function (id, i) {
    var li = document.createElement("li"), b = document.createElement("button");
    li.textContent = PRODUCTS[id].name + " — " + PRODUCTS[id].price + " EUR ";
    b.textContent = "Remove"; b.className = "remove"; b.onclick = function () { removeFromCart(i); };
    li.appendChild(b); ul.appendChild(li);
  });
}
function search(form) {
  var q = form.q.value.toLowerCase(), hits = Object.keys(PRODUCTS).filter(function (k) {
    return PRODUCTS[k].name.toLowerCase().indexOf(q) >= 0; });
  nextchannel.track("search", { n_results: hits.length }); // the count only: the query stays here
  document.getElementById("results").textContent = hits.length ? "Found: " + hits.join(", ") : "Nothing found.";
  return false;
}
function checkCard(input) {
  // a custom check that marks the field with aria-invalid (what many form libraries do)
  var ok = /^[0-9]{16}$/.test(input.value.replace(/ /g, ""));
  input.setAttribute("aria-invalid", ok ? "false" : "true");
  return ok;
}
function checkout(form) {
  if (!checkCard(form.card)) return false;
  var total = cart().reduce(function (s, id) { return s + PRODUCTS[id].price; }, 0);
  nextchannel.track("purchase", { value: total });
  saveCart([]);
  document.getElementById("done").textContent = "Thank you for your order.";
  return false;
}
document.addEventListener("DOMContentLoaded", renderCart);
