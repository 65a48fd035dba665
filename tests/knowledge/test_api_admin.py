"""The knowledge API and back office: roles, status codes, shape, and two-tenant isolation."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.accounts.roles import AGENT, KNOWLEDGE_EDITOR
from apps.accounts.services import user_create
from apps.core.tenancy import tenant_context
from apps.knowledge.answers import knowledge_answer
from apps.knowledge.indexing import article_index, document_index
from apps.knowledge.models import Article, ArticleVersion, Chunk, Document, KnowledgeGap
from apps.knowledge.selectors import chunk_search
from apps.knowledge.services import article_feedback_record, article_save, article_view_record
from tests.conftest import TenantSetup
from tests.knowledge.conftest import upload

pytestmark = pytest.mark.django_db
PASSWORD = "pw-knowledge-123456"
FAQ = b'question,answer\nDo you deliver to Eldoret?,"Yes, within two days for 300 KES."\n'


def _member(tenant: TenantSetup, email: str, role: str) -> Client:
    client = tenant.client()
    with tenant_context(tenant.organization):
        # The session lives in the tenant's schema; agents cannot use the admin login form.
        client.force_login(user_create(email=email, password=PASSWORD, role=role))
    return client


def test_editor_uploads_through_the_api_and_agent_may_only_search(tenant_a: TenantSetup) -> None:
    editor = _member(tenant_a, "editor@alpha.test", KNOWLEDGE_EDITOR)
    response = editor.post(
        "/api/v1/knowledge/documents/",
        {"file": SimpleUploadedFile("delivery.csv", FAQ), "title": "Delivery FAQ", "tags": ["delivery"]},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["title"], body["kind"], body["status"], body["tags"]) == (
        "Delivery FAQ",
        "csv",
        "uploaded",
        ["delivery"],
    )
    with tenant_context(tenant_a.organization):
        document_index(document_id=body["id"])
    detail = editor.get(f"/api/v1/knowledge/documents/{body['id']}/").json()
    assert (detail["status"], detail["progress"], detail["chunks_embedded"]) == ("ready", 100, 1)

    unsupported = editor.post(
        "/api/v1/knowledge/documents/", {"file": SimpleUploadedFile("x.pdf", b"\x89PNG\r\n\x1a\n" + b"0" * 50)}
    )
    assert unsupported.status_code == 201 and unsupported.json()["status"] == "failed"
    assert unsupported.json()["error_code"] == "document_unsupported"

    agent = _member(tenant_a, "agent@alpha.test", AGENT)
    denied = agent.post("/api/v1/knowledge/documents/", {"file": SimpleUploadedFile("a.txt", b"hello")})
    assert denied.status_code == 403 and denied.json()["code"] == "permission_denied"
    hits = agent.get("/api/v1/knowledge/search/", {"q": "delivery to Eldoret", "k": "3"}).json()
    assert hits[0]["source_type"] == "document" and "Eldoret" in hits[0]["text"]
    answer = agent.post("/api/v1/knowledge/answer/", {"question": "Do you deliver to Eldoret?"}, "application/json")
    assert answer.json()["handoff"] is False and answer.json()["citations"][0]["title"] == "Delivery FAQ"

    assert (
        editor.patch(f"/api/v1/knowledge/documents/{body['id']}/", {"published": False}, "application/json").json()[
            "published"
        ]
        is False
    )
    assert editor.delete(f"/api/v1/knowledge/documents/{body['id']}/").status_code == 204
    with tenant_context(tenant_a.organization):
        assert not Chunk.objects.filter(document_id=body["id"]).exists()


def test_upload_over_the_limit_is_a_400(tenant_a: TenantSetup, settings: object) -> None:
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 10  # type: ignore[attr-defined]
    editor = _member(tenant_a, "editor2@alpha.test", KNOWLEDGE_EDITOR)
    response = editor.post("/api/v1/knowledge/documents/", {"file": SimpleUploadedFile("a.txt", b"x" * 11)})
    assert response.status_code == 400 and response.json()["code"] == "document_too_large"


def test_api_and_admin_of_b_never_show_a(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        secret = upload(b"Alpha's secret discount code is ALPHA-SAVE-50.", "secret.txt")
        knowledge_answer(question="Where is alpha's gold stored?")
    b_admin = tenant_b.client()
    b_admin.post("/admin/login/", {"username": tenant_b.admin_email, "password": tenant_b.password})
    assert b_admin.get("/api/v1/knowledge/documents/").json() == []
    assert b_admin.get(f"/api/v1/knowledge/documents/{secret.pk}/").status_code == 404
    assert b_admin.delete(f"/api/v1/knowledge/documents/{secret.pk}/").status_code == 404
    hits = b_admin.get("/api/v1/knowledge/search/", {"q": "ALPHA-SAVE-50 discount code"}).json()
    assert hits == []
    answer = b_admin.post("/api/v1/knowledge/answer/", {"question": "What is the discount code?"}, "application/json")
    assert answer.json()["handoff"] is True and "ALPHA" not in answer.json()["text"]
    changelist = b_admin.get("/admin/knowledge/document/").content.decode()
    assert "secret" not in changelist
    assert b_admin.get(f"/admin/knowledge/document/{secret.pk}/change/").status_code in (302, 404)
    gaps = b_admin.get("/admin/knowledge/knowledgegap/").content.decode()
    assert "gold" not in gaps
    with tenant_context(tenant_a.organization):
        assert Document.objects.filter(pk=secret.pk).exists()

    a_admin = tenant_a.client()
    a_admin.post("/admin/login/", {"username": tenant_a.admin_email, "password": tenant_a.password})
    assert "alpha&#x27;s gold" in a_admin.get("/admin/knowledge/knowledgegap/").content.decode()


def test_editor_uploads_in_the_back_office(tenant_a: TenantSetup) -> None:
    editor = _member(tenant_a, "editor3@alpha.test", KNOWLEDGE_EDITOR)
    assert editor.get("/admin/knowledge/document/add/").status_code == 200
    response = editor.post(
        "/admin/knowledge/document/add/",
        {
            "title": "Hours",
            "upload": SimpleUploadedFile("hours.md", b"# Hours\n\nOpen 9 to 5."),
            "tags": "",
            "published": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    with tenant_context(tenant_a.organization):
        document = Document.objects.get(title="Hours")
        assert (document.kind, document.status, document.original_name) == ("md", "uploaded", "hours.md")
    assert editor.get("/admin/knowledge/knowledgegap/").status_code == 200
    agent = _member(tenant_a, "agent3@alpha.test", AGENT)
    assert agent.get("/admin/knowledge/document/add/").status_code == 302  # agents are not staff


def test_article_versions_diff_restore_and_indexing(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        article = article_save(
            title="Warranty", body="Phones carry a **one year** warranty.", status=Article.Status.PUBLISHED
        )
        article_index(article_id=article.pk)
        assert chunk_search(query="how long is the phone warranty", k=1)[0].chunk.article_id == article.pk
        article = article_save(
            article=article, title="Warranty", body="Phones carry a two year warranty.", status="published"
        )
        article_index(article_id=article.pk)
        assert article.version == 2 and ArticleVersion.objects.filter(article=article).count() == 2
        assert "two year" in Chunk.objects.get(article=article).text
        article_view_record(article=article)
        article_feedback_record(article=article, helpful=True)
        article.refresh_from_db()
        assert (article.view_count, article.helpful_count) == (1, 1)

    client = tenant_a.client()
    client.post("/admin/login/", {"username": tenant_a.admin_email, "password": tenant_a.password})
    diff = client.get(f"/admin/knowledge/article/{article.pk}/versions/1/diff/")
    page = diff.content.decode()
    assert diff.status_code == 200 and "Current (version 2)" in page
    assert "diff_sub" in page and "Phones&nbsp;carry" in page
    restored = client.post(f"/admin/knowledge/article/{article.pk}/versions/1/restore/")
    assert restored.status_code == 302
    with tenant_context(tenant_a.organization):
        article.refresh_from_db()
        assert article.version == 3 and "one year" in article.body
        assert list(ArticleVersion.objects.filter(article=article).values_list("number", flat=True)) == [3, 2, 1]

    edit = client.post(
        f"/admin/knowledge/article/{article.pk}/change/",
        {
            "title": "Warranty",
            "body": "Phones carry a three year warranty.",
            "status": "archived",
            "tags": "",
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "0",
        },
    )
    assert edit.status_code == 302, edit.content.decode()[:3000]
    with tenant_context(tenant_a.organization):
        article.refresh_from_db()
        assert (article.version, article.status) == (4, "archived")
        assert not Chunk.objects.filter(article=article, is_live=True).exists()  # archived: not searchable
        assert not KnowledgeGap.objects.exists()


def test_editors_write_articles_through_the_api(tenant_a: TenantSetup) -> None:
    editor = _member(tenant_a, "editor-art@alpha.test", KNOWLEDGE_EDITOR)
    created = editor.post(
        "/api/v1/knowledge/articles/",
        {"title": "Warranty", "body": "Phones carry a one year warranty.", "status": "published", "tags": ["Phones"]},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["title"], body["status"], body["version"], body["tags"]) == ("Warranty", "published", 1, ["phones"])
    patched = editor.patch(
        f"/api/v1/knowledge/articles/{body['id']}/",
        {"body": "Phones carry a two year warranty."},
        content_type="application/json",
    )
    assert patched.status_code == 200 and patched.json()["version"] == 2
    listed = editor.get("/api/v1/knowledge/articles/").json()
    assert [a["id"] for a in listed] == [body["id"]] and "two year" in listed[0]["body"]
    assert editor.get("/api/v1/knowledge/articles/999999/").status_code == 404
    agent = _member(tenant_a, "agent-art@alpha.test", AGENT)
    denied = agent.post("/api/v1/knowledge/articles/", {"title": "x", "body": "y"}, content_type="application/json")
    assert denied.status_code == 403


def test_a_zip_import_queues_one_document_per_file(tenant_a: TenantSetup) -> None:
    import io
    import zipfile

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("Delivery/faq.csv", FAQ.decode())
        zipped.writestr("hours.md", "# Hours\n\nOpen 9 to 5.")
        zipped.writestr("logo.png", b"\x89PNG\r\n\x1a\n" + b"0" * 50)
    editor = _member(tenant_a, "editor-imp@alpha.test", KNOWLEDGE_EDITOR)
    response = editor.post("/api/v1/knowledge/import/", {"file": SimpleUploadedFile("kb.zip", archive.getvalue())})
    assert response.status_code == 202, response.content
    documents = {d["original_name"]: d for d in response.json()["documents"]}
    assert documents["faq.csv"]["status"] == "uploaded" and documents["faq.csv"]["category"] == "Delivery"
    assert documents["hours.md"]["status"] == "uploaded" and documents["logo.png"]["status"] == "failed"
    single = editor.post("/api/v1/knowledge/import/", {"file": SimpleUploadedFile("more.csv", FAQ)})
    assert single.status_code == 202 and len(single.json()["documents"]) == 1
    # A single file keeps its uploaded name (not the temporary file's).
    assert single.json()["documents"][0]["original_name"] == "more.csv"
    agent = _member(tenant_a, "agent-imp@alpha.test", AGENT)
    assert agent.post("/api/v1/knowledge/import/", {"file": SimpleUploadedFile("a.csv", FAQ)}).status_code == 403


def test_importing_one_docx_gives_one_document(tenant_a: TenantSetup) -> None:
    from tests.knowledge import samples

    data = samples.docx_bytes([("h1", "Returns"), ("p", "Keep your receipt.")])
    editor = _member(tenant_a, "editor-docx@alpha.test", KNOWLEDGE_EDITOR)
    response = editor.post("/api/v1/knowledge/import/", {"file": SimpleUploadedFile("returns.docx", data)})
    assert response.status_code == 202, response.content
    documents = response.json()["documents"]
    assert [(d["original_name"], d["kind"], d["status"]) for d in documents] == [("returns.docx", "docx", "uploaded")]


def test_an_undecodable_utf16_upload_is_a_failed_document_not_a_500(tenant_a: TenantSetup) -> None:
    lone = b"\xff\xfe" + "Refunds ".encode("utf-16-le") + b"\x00\xd8" + "take five days.".encode("utf-16-le")
    editor = _member(tenant_a, "editor-utf16@alpha.test", KNOWLEDGE_EDITOR)
    response = editor.post("/api/v1/knowledge/documents/", {"file": SimpleUploadedFile("lone.txt", lone)})
    assert response.status_code == 201, response.content
    assert (response.json()["status"], response.json()["error_code"]) == ("failed", "document_undecodable")
