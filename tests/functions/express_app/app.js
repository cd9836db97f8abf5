// An Express app wrapped with serverless-http, exactly as it would be deployed on AWS Lambda.
const express = require("express");
const serverless = require("serverless-http");

const app = express();
app.use(express.json());

app.get("/users/:id", (req, res) => {
  console.log(`looking up user ${req.params.id}`);
  res.set("x-handled-by", "express");
  res.cookie("session", "abc", { path: "/" });
  res.cookie("theme", "dark", { path: "/" });
  res.json({ id: req.params.id, query: req.query });
});

app.post("/items", (req, res) => {
  res.status(201).json({ created: req.body });
});

app.get("/teapot", (req, res) => res.status(418).send("short and stout"));

module.exports.handler = serverless(app);
