# Oxigraph SPARQL 1.1 server (query, update, Graph Store Protocol) for eeflow's linked data.
FROM ghcr.io/oxigraph/oxigraph:0.5.3

EXPOSE 7878
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=5s --retries=5 CMD ["oxigraph", "--version"]
ENTRYPOINT ["oxigraph"]
CMD ["serve", "--location", "/data", "--bind", "0.0.0.0:7878"]
